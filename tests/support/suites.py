"""Another integration suite's module, imported by its path: fixture classes such as postgres/pgserver.py or a
suite's conftest servers, shared without their names clashing with the importing suite's own."""

import importlib.util
import os

INTEGRATION = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration")


def load_suite_module(name, relative):
    """The module at tests/integration/<relative>, imported under `name`."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(INTEGRATION, relative))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
