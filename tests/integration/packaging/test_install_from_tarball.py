"""A new user's path: `ansible-galaxy collection install` of the built tarball into an empty collections path,
then the s3_bucket role (which calls amazon.aws and community.aws modules) against moto, with Ansible seeing
ONLY that path: ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false keeps the collections bundled in the `ansible`
package (site-packages/ansible_collections) out of reach, so what resolves amazon.aws is what the install put
there.

Offline nuance: this machine reaches PyPI, not Galaxy. So the dependencies are not downloaded but offered to
the same dependency resolver as local directories (the amazon.aws and community.aws the `ansible` package
carries) with `--offline`: the resolver still checks them against the ranges galaxy.yml declares, and a
collection that declared none would install without them (the second test)."""

import os

import yaml

from packaging_helpers import installed_collection, run, tool

ROLE_PLAY = """\
- name: Apply the s3_bucket role from the installed collection
  hosts: localhost
  gather_facts: false
  roles:
    - role: lifeboat.backup.s3_bucket
"""
ISOLATED = {"ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false"}


def install(tarball, dest, requirements):
    req_file = os.path.join(os.path.dirname(dest), "requirements.yml")
    with open(req_file, "w") as handle:
        yaml.safe_dump({"collections": [{"name": tarball, "type": "file"}] + requirements}, handle)
    # Only `dest` counts as installed: a lifeboat.backup in ~/.ansible/collections would make this "nothing to do".
    return run([tool("ansible-galaxy"), "collection", "install", "--offline", "-p", dest, "-r", req_file],
               env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=dest, **ISOLATED), cwd=os.path.dirname(dest))


def dependency_dirs():
    return [{"name": installed_collection(fqcn)[0], "type": "dir"} for fqcn in ("amazon.aws", "community.aws")]


def test_installed_tarball_runs_the_s3_bucket_role_against_moto(tarball, tmp_path, ansible, moto):
    # Not beside the playbook: Ansible also searches <playbook dir>/collections.
    dest = str(tmp_path / "install")
    proc = install(tarball, dest, dependency_dirs())
    assert proc.returncode == 0, proc.stdout
    installed = sorted("%s.%s" % (ns, name) for ns in os.listdir(os.path.join(dest, "ansible_collections"))
                       for name in os.listdir(os.path.join(dest, "ansible_collections", ns)))
    assert installed == ["amazon.aws", "community.aws", "lifeboat.backup"]
    # A real copy, not this checkout (the other integration tests use a symlink to it).
    assert not os.path.islink(os.path.join(dest, "ansible_collections", "lifeboat", "backup"))

    ansible.env.update(ISOLATED, ANSIBLE_COLLECTIONS_PATH=dest)
    (tmp_path / "play").mkdir()
    play = tmp_path / "play" / "site.yml"
    play.write_text(ROLE_PLAY)
    bucket = "lb-install-%s" % os.urandom(5).hex()
    proc = ansible.playbook(str(play), {"s3_bucket_name": bucket, "s3_bucket_endpoint_url": moto.url})
    assert proc.returncode == 0, proc.stdout

    s3 = moto.client()
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [rule["ID"] for rule in rules] == ["lifeboat-tiers"]

    # Without the install path, amazon.aws does not resolve: the run above used the installed copies.
    ansible.env.update(ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "empty"))
    proc = ansible.playbook(str(play), {"s3_bucket_name": bucket, "s3_bucket_endpoint_url": moto.url})
    assert proc.returncode != 0 and "lifeboat.backup.s3_bucket" in proc.stdout, proc.stdout


def test_install_without_the_dependencies_is_refused(tarball, tmp_path):
    dest = str(tmp_path / "install")
    proc = install(tarball, dest, [])
    assert proc.returncode != 0, proc.stdout
    assert "amazon.aws" in proc.stdout or "community.aws" in proc.stdout, proc.stdout
    assert not os.path.exists(os.path.join(dest, "ansible_collections", "lifeboat", "backup"))
