"""The action group `lifeboat` (meta/runtime.yml) is what `module_defaults: {group/lifeboat.backup.lifeboat: ...}`
fills in: every key given there is passed to every module of the group. So the group holds exactly the modules
that take the repository options (`job`, `dest`, `s3`, `sftp`, `ftp`); a module without them would fail with
"Unsupported parameters" under the README's quickstart (litestream_config and the put-back modules pg_put_back,
redis_put_back, sqlite_put_back, dir_put_back; see docs/design-notes.md)."""

import json
import os
import subprocess

import yaml

from packaging_helpers import REPO, tool

REPOSITORY_OPTIONS = {"job", "dest", "s3", "sftp", "ftp"}


def module_options(collections):
    modules = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "plugins", "modules"))
                     if name.endswith(".py"))
    proc = subprocess.run([tool("ansible-doc"), "-t", "module", "--json"] + ["lifeboat.backup." + m for m in modules],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections))
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    return {name.split(".")[-1]: set(doc["doc"]["options"]) for name, doc in docs.items()}


def test_group_members_are_exactly_the_modules_with_repository_options(collections):
    with open(os.path.join(REPO, "meta", "runtime.yml")) as handle:
        group = set(yaml.safe_load(handle)["action_groups"]["lifeboat"])
    options = module_options(collections)
    with_repository = {name for name, opts in options.items() if REPOSITORY_OPTIONS <= opts}
    assert group == with_repository
    outside = {"litestream_config", "pg_put_back", "redis_put_back", "sqlite_put_back", "dir_put_back"}
    assert outside <= set(options) - group
