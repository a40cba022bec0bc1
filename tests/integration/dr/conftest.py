"""Fixtures for the DR rebuild test: the local Debian image and a fresh podman container standing in for the
new EC2 instance (systemd as PID 1, host network so that 127.0.0.1 reaches moto and the health endpoint)."""

import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
IMAGE = os.environ.get("LIFEBOAT_DR_IMAGE", "localhost/lifeboat-debian:12")
BUILD_SCRIPT = os.path.join(REPO, "molecule", "build_debian_image.sh")
CONTAINERS_CONF = os.environ.get("CONTAINERS_CONF") or os.path.join(REPO, "molecule", "containers.conf")
CACHE = os.environ.get("LIFEBOAT_DR_CACHE", "/var/tmp/lifeboat-dr-cache")
PM2_VERSION = "5.4.3"


def podman_env():
    return dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF)


def podman(*args, check=True, timeout=120):
    proc = subprocess.run(["podman"] + list(args), env=podman_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("podman %s failed (%d):\n%s" % (" ".join(args), proc.returncode, proc.stdout))
    return proc


@pytest.fixture(scope="session")
def containers_conf():
    """The containers.conf podman needs on these machines (runc, fixed ulimits): pass it to ansible-playbook."""
    return CONTAINERS_CONF


@pytest.fixture(scope="session")
def dr_image():
    """localhost/lifeboat-debian:12, built once by molecule/build_debian_image.sh (skipped when it exists)."""
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        pytest.fail("missing %s: apt-get install -y podman runc debootstrap" % " ".join(missing))
    proc = subprocess.run(["sh", BUILD_SCRIPT, IMAGE], env=podman_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        pytest.fail("building %s failed:\n%s" % (IMAGE, proc.stdout[-4000:]))
    return IMAGE


@pytest.fixture(scope="module")
def dr_container(dr_image):
    """A fresh container (nothing installed but python3 and systemd), removed at teardown. Its apt lists are empty
    and brand new, as on an image baked minutes ago: apt's date-based cache_valid_time would not refresh them."""
    name = "lifeboat-dr-%s" % uuid.uuid4().hex[:8]
    podman("run", "-d", "--name", name, "--hostname", name, "--network", "host", "--systemd", "always",
           dr_image, "/lib/systemd/systemd")
    try:
        deadline = time.monotonic() + 60
        while True:
            state = podman("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise AssertionError("systemd in %s did not finish booting: %s" % (name, state))
            time.sleep(0.5)
        podman("exec", name, "sh", "-c", "rm -f /var/lib/apt/periodic/update-success-stamp && "
               "touch /var/lib/apt/lists && "
               "test -z \"$(find /var/lib/apt/lists -maxdepth 1 -type f -name '*_Packages*')\"")
        yield name
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


@pytest.fixture(scope="module")
def container_exec(dr_container):
    def run(*argv):
        proc = podman("exec", dr_container, *argv, check=False)
        assert proc.returncode == 0, "%s failed in %s:\n%s" % (" ".join(argv), dr_container, proc.stdout)
        return proc.stdout
    return run


@pytest.fixture(scope="session")
def pipelined_podman():
    """Environment for ansible-playbook: the podman connection with pipelining (connection_plugins/)."""
    return {"ANSIBLE_CONNECTION_PLUGINS": os.path.join(HERE, "connection_plugins"), "ANSIBLE_PIPELINING": "1"}


@pytest.fixture(scope="session")
def pm2_bundle():
    """A tarball of node_modules holding PM2 (npm install on the controller, as an application's release bundle
    carries its dependencies), cached in /var/tmp like the image: the instances of this machine reach no npm
    registry through TLS, and Debian's npm package alone takes minutes to install."""
    path = os.path.join(CACHE, "pm2-%s-node_modules.tar.gz" % PM2_VERSION)
    if os.path.exists(path):
        return path
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is missing on the controller: apt-get install -y npm (it builds the PM2 bundle once)")
    os.makedirs(CACHE, exist_ok=True)
    work = tempfile.mkdtemp(prefix="pm2-", dir=CACHE)
    try:
        proc = subprocess.run([npm, "install", "--prefix", work, "--no-audit", "--no-fund", "--no-save",
                               "pm2@%s" % PM2_VERSION], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=600, check=False)
        if proc.returncode != 0:
            pytest.fail("npm install pm2@%s failed:\n%s" % (PM2_VERSION, proc.stdout[-3000:]))
        partial = path + ".partial-%d" % os.getpid()
        subprocess.run(["tar", "-C", work, "-czf", partial, "node_modules"], check=True)
        os.replace(partial, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path
