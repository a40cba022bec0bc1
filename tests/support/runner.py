"""The lifeboat runner as the schedule role installs it: one zipapp built from the engine tree
(roles/schedule/files/build_runner.py), run with `python3 <lib>/lifeboat.pyz`."""

import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINE = os.path.join(REPO, "plugins", "module_utils", "engine")
BUILDER = os.path.join(REPO, "roles", "schedule", "files", "build_runner.py")


def _builder():
    spec = importlib.util.spec_from_file_location("lifeboat_build_runner", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install_runner(lib_dir):
    """Build the zipapp into `lib_dir` (created) as lifeboat.pyz and return its path."""
    os.makedirs(str(lib_dir), exist_ok=True)
    return _builder().build(ENGINE, os.path.join(str(lib_dir), "lifeboat.pyz"))["path"]
