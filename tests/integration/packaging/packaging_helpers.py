"""Helpers of tests/integration/packaging: build the collection as Galaxy would receive it, and find the
dependency collections the installed `ansible` package carries (the network here reaches PyPI, not Galaxy)."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)


def tool(name):
    """A console script of the interpreter running the tests (ansible-galaxy, ansible-builder...)."""
    return os.path.join(BIN, name)


def run(argv, **kwargs):
    kwargs.setdefault("cwd", REPO)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          timeout=kwargs.pop("timeout", 600), **kwargs)


def build_tarball(output_dir):
    """`ansible-galaxy collection build` of this checkout; returns the tarball's path."""
    proc = run([tool("ansible-galaxy"), "collection", "build", "--force", "--output-path", output_dir])
    assert proc.returncode == 0, proc.stdout
    tarballs = [name for name in os.listdir(output_dir) if name.endswith(".tar.gz")]
    assert len(tarballs) == 1, tarballs
    return os.path.join(output_dir, tarballs[0])


def installed_collection(fqcn):
    """Directory and version of a collection the `ansible` package installed (site-packages/ansible_collections)."""
    proc = run([tool("ansible-galaxy"), "collection", "list", fqcn, "--format", "json"],
               env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.devnull))
    assert proc.returncode == 0, proc.stdout
    listing = json.loads(proc.stdout[proc.stdout.index("{"):])
    for base, collections in listing.items():
        if fqcn in collections:
            namespace, name = fqcn.split(".")
            return os.path.join(base, namespace, name), collections[fqcn]["version"]
    raise AssertionError("%s is not installed: %s" % (fqcn, proc.stdout))
