#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: pg_dump_s3
short_description: Stream a pg_dump of a PostgreSQL database to S3 and/or a local directory, verified
version_added: 0.1.0
description:
  - Runs C(pg_dump --format=custom) and streams its output through compression (and optional age encryption) to every
    repository in one pass, without temporary files. The manifest is written last, and only when C(pg_dump) and every
    other process exited successfully, so a dump that fails half way leaves no complete set and no finished upload.
  - With I(verify), the manifest records exact per-table row counts taken in the very snapshot C(pg_dump) dumps (a
    C(REPEATABLE READ) transaction exports its snapshot, C(pg_dump --snapshot) imports it). The counts start once
    C(pg_dump) has locked every table. A table another session rewrote while the dump ran (C(ALTER TABLE),
    C(TRUNCATE), C(VACUUM FULL), C(CLUSTER)) cannot be counted in that snapshot; it is left out of the counts and
    named under C(verification.row_counts_skipped).
  - The manifest also records the server, C(psql) and C(pg_dump) versions, the database encoding and locale.
  - With I(globals), the roles and tablespaces (C(pg_dumpall --globals-only)) are stored in the same data object
    (a C(data.pgbundle) holding a one-line header, the globals SQL, then the archive). Without it the data object is
    the plain C(pg_dump) archive (C(data.pgdump)).
  - In check mode it connects, logs in, checks the database and the C(pg_dump) version, and reports where the set
    would be written.
author:
  - lifeboat.backup contributors (@lifeboat-backup)
options:
  database:
    description: The database to dump.
    type: str
    required: true
    aliases: [db]
  globals:
    description:
      - Also store the cluster's globals (roles, role memberships, tablespaces) from C(pg_dumpall --globals-only).
      - Reading role passwords needs a superuser; see I(globals_role_passwords).
    type: bool
    default: false
  globals_role_passwords:
    description: Include the role password hashes in the globals. Set to false to dump globals as a non-superuser.
    type: bool
    default: true
  lock_wait_timeout:
    description:
      - Seconds to wait for the table locks C(pg_dump) takes when it starts (C(--lock-wait-timeout)) and for those of
        the row counts. A session holding a table exclusively (a long migration, C(VACUUM FULL)) then fails the
        backup within that time, naming the table, instead of holding the schedule's run (and its overlap lock) until
        the session ends.
      - Unset, the dump waits as long as the lock is held, as C(pg_dump) does.
    type: int
extends_documentation_fragment:
  - lifeboat.backup.repository
  - lifeboat.backup.backup
  - lifeboat.backup.postgres
attributes:
  check_mode:
    support: full
    description: Connects and validates the source and options; writes nothing.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on a host with the PostgreSQL client programs and network access to the server.
seealso:
  - module: lifeboat.backup.pg_restore_s3
  - module: lifeboat.backup.backup_catalog
"""

EXAMPLES = r"""
- name: Dump the app database to S3, logging in over TCP
  lifeboat.backup.pg_dump_s3:
    job: app-pg
    database: app
    login_host: db.internal
    login_user: backup
    login_password: "{{ vault_pg_backup_password }}"
    s3:
      bucket: acme-backups
      prefix: prod

- name: Dump on the database host as postgres (peer auth on the local socket), with globals, to S3 and disk
  become: true
  become_user: postgres
  lifeboat.backup.pg_dump_s3:
    job: app-pg
    database: app
    globals: true
    lock_wait_timeout: 60
    dest: /var/backups/lifeboat
    s3:
      bucket: acme-backups
"""

RETURN = r"""
backup:
  description: The set written.
  returned: success, and on failure when one repository still got a complete set
  type: dict
  contains:
    id:
      description: Set id, C(<UTC start time>-<hex>).
      type: str
      sample: 20261122T031500Z-3f9a0c
    job:
      description: Job name.
      type: str
      sample: app-pg
    kind:
      description: Source kind.
      type: str
      sample: postgres
    location:
      description: Where the set is, per repository (C(local) directory, C(s3) URL).
      type: dict
      sample: {"s3": "s3://acme-backups/prod/app-pg/20261122T031500Z-3f9a0c/"}
    size:
      description: Stored bytes, after compression and encryption.
      type: int
      sample: 1048576
    sha256:
      description: sha256 of the stored data object.
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    manifest:
      description: The manifest (server and tool versions under C(tools), row counts under C(verification)).
      type: dict
      sample: {"kind": "postgres", "verification": {"row_counts": {"public.orders": 120000}}}
plan:
  description: In check mode, what would be written.
  returned: check mode
  type: dict
  sample: {"job": "app-pg", "data": "data.pgdump.zst", "location": {"s3": "s3://acme-backups/prod/app-pg/<new set id>/"}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.postgres.kind import source_from_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.postgres.options import (
    CONNECTION_MUTUALLY_EXCLUSIVE, connection_spec, dump_spec)
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, backup_spec, run_backup_module)


def main():
    spec = backup_spec()
    spec.update(connection_spec())
    spec.update(dump_spec())
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF,
                           mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE, supports_check_mode=True)
    run_backup_module(module, source_from_options)


if __name__ == "__main__":
    main()
