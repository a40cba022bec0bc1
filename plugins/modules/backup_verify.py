#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: backup_verify
short_description: Prove that a backup set restores, with a test restore into scratch that never touches live data
version_added: 0.1.0
description:
  - Finds a set of I(job) (the latest, a given id, or the newest before a time), downloads its data object, checks its
    size and sha256 against the manifest, decrypts (with the identity this host holds) and decompresses it.
  - "With I(mode=full) (the default) the first copy is also restored into scratch, by the kind's own engine, and
    checked against what the manifest recorded at backup time: SQLite into a scratch file (C(integrity_check), row
    counts); PostgreSQL into a scratch database C(lifeboat_verify_<job>_<random>) on the server the C(login_*)
    options name (row counts; the database is dropped afterwards, also on failure; globals are never applied); Redis
    loaded by a scratch C(redis-server) on a unix socket in a private directory (key counts per database); a
    directory extracted into scratch (file count, bytes, C(integrity_check) of every SQLite file inside); MongoDB
    parsed end to end (document counts per collection). See docs/verification.md."
  - Every byte of the set is checked against its sha256 before any of it reaches a server.
  - The C(login_*) options (doc fragment below) name the PostgreSQL server of the scratch database. Its login user
    needs C(CREATEDB); a role without superuser rights is recommended, since the test restore runs the archive's SQL.
  - By default every repository holding the set complete (local directory and S3) is checked, so a damaged copy in
    one of them is found; the further copies are checked by sha256 and decoding.
  - Fails, naming the copy and the check, when anything does not match. Changes no live data.
author:
  - lifeboat.backup maintainers (@lifeboat-backup)
options:
  mode:
    description:
      - C(full) runs the kind's test restore. C(list) reads only the table of contents of a PostgreSQL archive with
        C(pg_restore --list), with no server (other kinds are then only decoded). C(decode) checks the sha256 and
        decodes the set only.
    type: str
    choices: [full, list, decode]
    default: full
  scratch_dir:
    description:
      - Directory for the test restore (a scratch file, directory tree, RDB or staged PostgreSQL archive). Default is
        the system temporary directory.
      - Before a C(full) test restore it must have the set's raw size plus 10% free (or I(min_free_mb)).
    type: path
  min_free_mb:
    description:
      - Free MiB that I(scratch_dir) needs before the test restore starts, instead of the set's raw size plus 10%.
    type: int
  all_copies:
    description: Verify the copy in every repository that holds the set. Set to false to check only the first (local when present).
    type: bool
    default: true
  redis_server_bin:
    description: The C(redis-server) that loads a Redis set in a test restore. Default is C(redis-server) on C(PATH).
    type: path
  allow_functions:
    description:
      - Load a Redis set whose RDB holds Redis Functions libraries (Lua that C(redis-server) runs while it loads the
        file) in the scratch server. By default such a set fails verification without being loaded.
    type: bool
    default: false
  allow_javascript:
    description:
      - Accept a MongoDB set whose metadata holds server-side JavaScript (C($where), C($function), C($accumulator) or
        code values in validators, views or index filters), as M(lifeboat.backup.mongo_restore) does with the same
        option. By default such a set fails verification, since the restore would refuse it.
    type: bool
    default: false
    version_added: 0.2.0
extends_documentation_fragment:
  - lifeboat.backup.repository
  - lifeboat.backup.restore
  - lifeboat.backup.postgres
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same checks in check mode.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description:
      - Runs where the repositories can be reached. SQLite checks use the Python sqlite3 module there; PostgreSQL
        needs C(pg_restore) and C(psql), Redis C(redis-server).
seealso:
  - module: lifeboat.backup.backup_catalog
  - module: lifeboat.backup.sqlite_restore
"""

EXAMPLES = r"""
- name: Verify the latest set of a job in S3 and in the local repository
  lifeboat.backup.backup_verify:
    job: app-db
    dest: /var/backups/lifeboat
    s3:
      bucket: acme-backups
      prefix: prod
  register: checked

- name: Verify an encrypted set by id
  lifeboat.backup.backup_verify:
    job: app-db
    s3:
      bucket: acme-backups
    backup: 20261122T031500Z-3f9a0c
    encryption:
      age_identity_file: /root/.config/lifeboat/age.key
"""

RETURN = r"""
skipped:
  description:
    - Damaged sets passed over to choose the set, newest first, each with C(id) and C(error) (why it is damaged); a
      warning names each. Empty unless I(skip_damaged=true) let the task fall back past them.
  returned: success
  type: list
  elements: dict
  sample: [{"id": "20261123T031500Z-77aa01", "error": "manifest ... is corrupted (not valid JSON ...)"}]
backup:
  description: The set verified.
  returned: always
  type: dict
  contains:
    id:
      description: Set id.
      type: str
      sample: 20261122T031500Z-3f9a0c
    job:
      description: Job name.
      type: str
      sample: app-db
    kind:
      description: Source kind.
      type: str
      sample: sqlite
    location:
      description: Where the set is, per repository.
      type: dict
      sample: {"s3": "s3://acme-backups/prod/app-db/20261122T031500Z-3f9a0c/"}
    size:
      description: Stored bytes.
      type: int
      sample: 1048576
    sha256:
      description: sha256 of the stored data object, from the manifest.
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    manifest:
      description: The set's manifest.
      type: dict
      sample: {"kind": "sqlite"}
verification:
  description: What was checked.
  returned: always
  type: dict
  contains:
    status:
      description: C(ok) when every check passed.
      type: str
      sample: ok
    copies:
      description: Result per repository, C(ok) or the error.
      type: dict
      sample: {"local": "ok", "s3": "ok"}
    size:
      description: Stored bytes per the manifest (checked).
      type: int
      sample: 1048576
    raw_size:
      description: Decoded bytes.
      type: int
      sample: 5947392
    kind:
      description: Source kind.
      type: str
      sample: sqlite
    encrypted:
      description: Whether the set is age-encrypted (and was decrypted).
      type: bool
      sample: false
    mode:
      description: The mode that ran (C(full), C(list) or C(decode)).
      type: str
      sample: full
    test_restore:
      description: C(ok) when the test restore passed, C(skipped - <why>) when the mode made none, else the failure.
      type: str
      sample: ok
    restore_seconds:
      description:
        - Wall time of the check of the first copy (download, decode and test restore), an estimate of the time a
          restore takes (RTO). In modes C(list) and C(decode) it covers download and decoding only.
      type: float
      sample: 12.4
    checked:
      description:
        - What the test restore compared with the manifest, each with C(expected) and C(actual) - C(row_counts)
          (SQLite, PostgreSQL), C(keys) (Redis), C(file_count), C(bytes), C(directories), C(symlinks) and C(sqlite)
          (directory), C(document_counts) (MongoDB).
      type: dict
      sample: {"row_counts": {"expected": {"public.orders": 120000}, "actual": {"public.orders": 120000}}}
    scratch_dir:
      description: Where the test restore was made.
      type: str
      sample: /var/tmp
    scratch_database:
      description: The PostgreSQL scratch database (dropped again; see C(scratch_database_dropped)).
      type: str
      sample: lifeboat_verify_app_db_20261205031500_3f9a0c1d
    swept_scratch_databases:
      description:
        - PostgreSQL scratch databases that verifies killed outright (SIGKILL, a reboot) had left on the scratch
          server, dropped before this test restore. Only those of this naming, older than any verify can run (25
          hours, from the time in their name) and with nobody connected are dropped; absent when there were none.
      type: list
      elements: str
      sample: [lifeboat_verify_app_db_20261203031500_9e1f0a2b]
    warnings:
      description: Problems that did not fail the verification, such as a scratch database that could not be dropped.
      type: list
      elements: str
      sample: []
    integrity_check:
      description: SQLite C(PRAGMA integrity_check) of the test restore.
      type: str
      sample: ok
    row_counts:
      description: Rows per table of the test restore.
      type: dict
      sample: {"orders": 120000}
    row_counts_match:
      description: Whether the row counts equal those recorded in the manifest.
      type: bool
      sample: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.naming import validate_job
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec, find
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.pipeline.options import VERIFY
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.mongo import options as mongo_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.postgres.options import (
    CONNECTION_KEYS, CONNECTION_MUTUALLY_EXCLUSIVE, connection_spec)
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.redis import options as redis_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.pipeline.verify import verify_set
# The kinds' test restores are loaded by name (kinds.verify_hook): imported here too, so Ansible ships them.
# pylint: disable-next=unused-import
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.directory import verify as _dir  # noqa: F401
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.mongo import verify as _mongo  # noqa: F401
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.postgres import verify as _pg  # noqa: F401
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.redis import verify as _redis  # noqa: F401
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.sqlite import verify as _sqlite  # noqa: F401
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, check_restore_selection, identity_file, repository_from_params, restore_spec, run_module)


def main():
    spec = restore_spec()
    spec.update(connection_spec())
    spec.update(argument_spec(VERIFY))  # mode, scratch_dir, min_free_mb: as lifeboat verify takes them
    spec.update(all_copies=dict(type="bool", default=True), redis_server_bin=dict(type="path"))
    # what the Redis and MongoDB test restores take from the kinds' restore options
    spec.update(allow_functions=find(redis_options.RESTORE_OPTIONS, "allow_functions").spec(),
                allow_javascript=find(mongo_options.RESTORE_OPTIONS, "allow_javascript").spec())
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True,
                           mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE)
    params = module.params

    def action():
        check_restore_selection(params)
        options = {"mode": params["mode"], "allow_functions": params["allow_functions"],
                   "allow_javascript": params["allow_javascript"],
                   "postgres": {key: params[key] for key in CONNECTION_KEYS if params.get(key) not in (None, "")},
                   "redis": {"redis_server_bin": params["redis_server_bin"]} if params["redis_server_bin"] else {}}
        result = verify_set(repository_from_params(params), validate_job(params["job"]), backup=params["backup"],
                            before=params["before"], identity_file=identity_file(params),
                            scratch_dir=params["scratch_dir"], all_copies=params["all_copies"], options=options,
                            min_free_mb=params["min_free_mb"])
        for warning in result["verification"].get("warnings") or []:
            module.warn(warning)
        return dict(result, changed=False)

    run_module(module, action)


if __name__ == "__main__":
    main()
