"""Offline stand-in for ansible-test's downloaded get-pip bootstrap script.

ansible-test builds its sanity venvs without pip and runs a get-pip script (fetched from a host
this CI cannot reach) with pip's install arguments. This does the same job with the interpreter's
bundled pip (ensurepip), then installs what was asked from the package index.
"""

import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
os.environ.pop("PIP_CONFIG_FILE", None)  # ensurepip points it at /dev/null; pip must see the host's config
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
