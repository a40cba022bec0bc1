"""meta/execution-environment.yml: `ansible-builder create` turns it into a build context (Containerfile plus the
dependency files and the collection tarball), and the same file gives ansible-builder's introspection the
collection's Python and system requirements when lifeboat.backup is installed into any execution environment.
No image is built here: no container registry is reachable from this machine."""

import filecmp
import os
import shutil
import sys

import yaml

from packaging_helpers import REPO, run, tool

EXPECTED_PYTHON = {"boto3", "botocore", "zstandard", "paramiko", "pymongo"}
EXPECTED_SYSTEM_RPM = {"zstd", "age", "sqlite", "postgresql", "redis"}


def requirement_names(path):
    lines = [line.split("#")[0].strip() for line in open(path)]
    return [line for line in lines if line]


def test_dependency_files_in_meta_are_copies_of_the_top_level_ones():
    # ansible-builder create reads them beside the definition, introspection and Galaxy at the collection root.
    for name in ("requirements.txt", "bindep.txt"):
        assert filecmp.cmp(os.path.join(REPO, name), os.path.join(REPO, "meta", name), shallow=False), name


def test_create_produces_a_build_context(tarball, tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(os.path.join(REPO, "meta"), str(checkout / "meta"))
    for name in ("requirements.txt", "bindep.txt"):
        shutil.copy(os.path.join(REPO, name), str(checkout / name))
    (checkout / "build").mkdir()
    shutil.copy(tarball, str(checkout / "build"))

    context = tmp_path / "context"
    proc = run([tool("ansible-builder"), "create", "-f", "meta/execution-environment.yml", "--context", str(context)],
               cwd=str(checkout))
    assert proc.returncode == 0, proc.stdout

    containerfile = (context / "Containerfile").read_text()
    build = context / "_build"
    assert (build / "requirements.txt").read_text() == open(os.path.join(REPO, "requirements.txt")).read()
    assert (build / "bindep.txt").read_text() == open(os.path.join(REPO, "bindep.txt")).read()
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    assert sorted(c["name"] for c in galaxy["collections"]) == ["amazon.aws", "community.aws"]
    assert (build / "lifeboat" / os.path.basename(tarball)).is_file()
    assert "--user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    assert "/build/lifeboat/lifeboat-backup-*.tar.gz" in containerfile
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core>=2.19,<2.20 ansible-runner"' in containerfile


def test_introspection_of_the_installed_collection_finds_its_requirements(tarball, tmp_path):
    dest = str(tmp_path / "collections")
    proc = run([tool("ansible-galaxy"), "collection", "install", "--no-deps", "-p", dest, tarball],
               env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=dest, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false"))
    assert proc.returncode == 0, proc.stdout
    proc = run([tool("ansible-builder"), "introspect", "--sanitize", dest])
    assert proc.returncode == 0, proc.stdout
    found = yaml.safe_load(proc.stdout[proc.stdout.index("python:"):]) if "python:" in proc.stdout else {}
    python = {line.split(">")[0].split("=")[0].strip() for line in found.get("python", [])}
    system = {line.split()[0] for line in found.get("system", [])}
    assert EXPECTED_PYTHON <= python, proc.stdout
    assert EXPECTED_SYSTEM_RPM | {"sqlite3", "postgresql-client", "redis-tools"} <= system, proc.stdout


def test_bindep_file_parses_and_names_the_tools_for_both_package_families():
    for profile in ("platform:rpm", "platform:dpkg"):
        proc = run([sys.executable, "-m", "bindep", "--file", os.path.join(REPO, "bindep.txt"), "--list_all",
                    "newline", profile])
        assert proc.returncode == 0, proc.stdout
    names = {line.split()[0] for line in requirement_names(os.path.join(REPO, "bindep.txt"))}
    assert EXPECTED_SYSTEM_RPM <= names
    assert {name.split(">")[0] for name in requirement_names(os.path.join(REPO, "requirements.txt"))} == EXPECTED_PYTHON
