import hashlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The engine is plain Python: unit tests import it straight from the checkout.
sys.path.insert(0, os.path.join(ROOT, "plugins", "module_utils"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Code that imports through the collection's own namespace (module_utils beside their module, e.g.
# litestream_config) is reached as ansible_collections.lifeboat.backup, as ansible-test units do.
from support.ansible import collections_root  # noqa: E402

sys.path.append(collections_root(os.path.join(os.environ.get("TMPDIR", "/tmp"), "lifeboat-tests-%d-%s" % (
    os.getuid(), hashlib.sha256(ROOT.encode()).hexdigest()[:8]))))
