#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: pg_restore_s3
short_description: Restore a PostgreSQL database from a lifeboat set, verified, into a new, existing or swapped-in database
version_added: 0.1.0
description:
  - Finds a set of I(job) (the latest, a given id, or the newest before a time) and restores it with C(pg_restore).
  - When I(database) does not exist it is created (owner the connecting user, C(template0), the dump's encoding) and
    the set is streamed into it in one transaction; if anything fails (including the sha256 check of the stored data)
    the new database is dropped again.
  - An existing database is only restored into with I(clean=true) or I(safe_swap=true); otherwise the module fails.
    With I(clean) the set is first read once to check its sha256, then restored with C(--clean --if-exists) in a
    single transaction, so a failure leaves the database as it was.
    With I(safe_swap) the set is restored into a side database, checked (sha256 and row counts against the manifest),
    and only then are the names swapped with C(ALTER DATABASE ... RENAME) in one transaction; the replaced database
    is kept as C(<database>_lbprev_<hex>) unless I(keep_previous=false).
  - I(tables) and I(schemas) restore only those objects with what depends on them (data, indexes, constraints,
    triggers, owned sequences); foreign keys to tables outside the selection are skipped.
  - I(jobs) greater than 1 loads the rows of every table through I(jobs) sessions, one large table included;
    C(pg_restore) turns the data into a script whose C(COPY) blocks are cut at row boundaries and dealt to I(jobs)
    C(psql) sessions. The schema comes first, from the head of the archive (its table of contents), which is staged
    in a 0600 file in I(tmp_dir) on the way; once the data is in and the set's sha256 checked, the indexes,
    constraints and triggers are built by C(pg_restore --section=post-data --jobs) from that file, and the row
    counts (the C(COPY <n>) tags the server returned, so no table is scanned again) are checked beside them.
    The file is removed afterwards. Each session commits on its own, so I(jobs) greater than 1 restores only into
    a new database or with I(safe_swap) (both dropped again on failure).
  - In check mode the set is downloaded and verified and the server checked; no database is changed.
author:
  - lifeboat.backup contributors (@lifeboat-backup)
options:
  database:
    description: The database to restore into.
    type: str
    required: true
    aliases: [db]
  clean:
    description:
      - Restore into an existing I(database), dropping and recreating the objects of the dump in one transaction.
      - Objects that are not in the dump are left alone. Not with I(jobs) greater than 1 (use I(safe_swap)).
    type: bool
    default: false
  safe_swap:
    description:
      - Restore an existing I(database) into a side database, verify it, then swap names. Needs no other sessions on
        I(database) at swap time (see I(terminate_connections)) and room for two copies.
      - Not with I(tables) or I(schemas).
    type: bool
    default: false
  tables:
    description: Restore only these tables (C(name) or C(schema.name)) with their indexes, constraints and triggers.
    type: list
    elements: str
    default: []
  schemas:
    description: Restore only the objects of these schemas.
    type: list
    elements: str
    default: []
  jobs:
    description:
      - Parallel sessions for the data (the rows of one table are shared out too) and for the post-data step
        (indexes, constraints, triggers).
      - Above 1 the head of the archive (its table of contents) is staged in I(tmp_dir).
      - Each session is one connection (I(jobs) + 1 while the indexes are built, with the row-count check), so
        the server's C(max_connections) and the role's C(CONNECTION LIMIT) must leave room for them.
      - Above 1 the rows go through C(psql) sessions, which run in restricted mode (C(\restrict)), so this needs
        psql 15.14, 16.10, 17.6 or later (13.22, 14.19); an older one is refused. Only lines of the shapes
        C(pg_restore) writes reach them; a set whose script holds anything else fails (I(jobs=1) uses C(pg_restore)
        alone).
    type: int
    default: 1
  tmp_dir:
    description: Directory for the staged table of contents (I(jobs) above 1) and the restore list. Default is the system temporary directory.
    type: path
  keep_previous:
    description: With I(safe_swap), keep the replaced database as C(<database>_lbprev_<hex>). False drops it after a successful swap.
    type: bool
    default: true
  terminate_connections:
    description: With I(safe_swap), end other sessions on I(database) right before the swap instead of failing.
    type: bool
    default: false
  no_owner:
    description: Do not restore ownership and grants (C(pg_restore --no-owner --no-acl)); objects belong to the login user.
    type: bool
    default: false
  restore_globals:
    description:
      - Apply the set's globals (roles, tablespaces) before the restore. Only for sets made with C(globals=true).
        Roles that already exist are kept (their attributes are updated). Needs a superuser.
      - The globals are checked before anything is applied, against the sha256 the manifest records for them
        (older sets are verified whole first), and must hold only the statements C(pg_dumpall --globals-only)
        writes, with no psql meta-command; they then run under psql's C(\restrict), which needs psql 15.14, 16.10,
        17.6 or later (13.22, 14.19). A set's globals can still create roles with any attributes, so restore them
        only from sets you trust with that.
    type: bool
    default: false
  verify:
    description: Compare the restored row counts with the manifest's. A mismatch fails the restore (with I(clean) it is reported).
    type: bool
    default: true
  analyze:
    description:
      - Run C(ANALYZE) on what was restored (every table and materialized view of the database, the system
        catalogs left out, or the tables of I(tables) and I(schemas)) once
        the indexes are built, so the planner has statistics before the first query; C(pg_restore) restores
        none, and until autovacuum gets to a freshly loaded table its queries may get poor plans.
      - With I(safe_swap) it runs on the restored copy before the swap. A failure is a warning; the restore stands.
    type: bool
    default: true
extends_documentation_fragment:
  - lifeboat.backup.repository
  - lifeboat.backup.restore
  - lifeboat.backup.postgres
attributes:
  check_mode:
    support: full
    description: Verifies the set and the connection; changes no database.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on a host with the PostgreSQL client programs and network access to the server.
seealso:
  - module: lifeboat.backup.pg_dump_s3
  - module: lifeboat.backup.backup_catalog
"""

EXAMPLES = r"""
- name: Rebuild a lost database from the latest set (it is created)
  lifeboat.backup.pg_restore_s3:
    job: app-pg
    database: app
    jobs: 4
    s3:
      bucket: acme-backups
      prefix: prod

- name: Roll the live database back to last night, swapping it in only once verified
  lifeboat.backup.pg_restore_s3:
    job: app-pg
    database: app
    before: "2026-11-22T02:00:00Z"
    safe_swap: true
    terminate_connections: true
    dest: /var/backups/lifeboat

- name: Bring back two tables into a scratch database
  lifeboat.backup.pg_restore_s3:
    job: app-pg
    database: app_scratch
    tables: [public.orders, public.order_lines]
    dest: /var/backups/lifeboat
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
  description: The set restored, in the same shape as M(lifeboat.backup.pg_dump_s3) returns.
  returned: success
  type: dict
  sample: {"id": "20261122T031500Z-3f9a0c", "job": "app-pg", "kind": "postgres", "size": 1048576}
restored_to:
  description: The database restored.
  returned: success
  type: str
  sample: app
mode:
  description: How it was restored, C(create) (new database), C(clean) (existing database) or C(safe_swap).
  returned: success
  type: str
  sample: create
previous:
  description: With I(safe_swap), the name the replaced database was kept under, or null.
  returned: success
  type: str
  sample: app_lbprev_1a2b3c
tables:
  description: With I(tables) or I(schemas), the tables restored (C(schema.table)).
  returned: when tables or schemas are set
  type: list
  elements: str
  sample: ["public.orders"]
server_version:
  description: Version of the server restored into.
  returned: success
  type: str
  sample: "15.18"
pg_restore_version:
  description: C(pg_restore --version) of the host that ran the restore.
  returned: success
  type: str
  sample: pg_restore (PostgreSQL) 15.18
globals:
  description: With I(restore_globals), what was applied.
  returned: when restore_globals is true
  type: dict
  sample: {"applied": true, "bytes": 812}
analyzed:
  description: Whether C(ANALYZE) ran on what was restored (see I(analyze)); false with a warning when it failed.
  returned: when analyze is true and check mode is off
  type: bool
  sample: true
verification:
  description:
    - Checks passed (sha256 of the stored data, row counts compared with the manifest).
    - C(row_counts_method) says where the counts came from (C(count(*)), or the COPY tags of a parallel load).
  returned: success
  type: dict
  sample: {"sha256": "ok", "row_counts_checked": true, "row_counts": {"public.orders": 120000}, "mismatches": {},
           "row_counts_method": "count(*) of every table"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.postgres.kind import restore_from_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.postgres.options import (
    CONNECTION_MUTUALLY_EXCLUSIVE, connection_spec, restore_spec as pg_restore_spec)
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, check_restore_selection, repository_from_params, restore_spec, run_module)


def main():
    spec = restore_spec()
    spec.update(connection_spec())
    spec.update(pg_restore_spec())
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF,
                           mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE,
                           supports_check_mode=True)
    params = module.params

    def action():
        check_restore_selection(params)
        result = restore_from_options(repository_from_params(params), params, check_mode=module.check_mode)
        for warning in result.pop("warnings", []):
            module.warn(warning)
        mismatches = (result.get("verification") or {}).get("mismatches")
        if mismatches:
            module.warn("restored row counts differ from the manifest for %s (the database was in use, or the "
                        "restore is incomplete)" % ", ".join(sorted(mismatches)))
        return dict(changed=True, **result)

    run_module(module, action)


if __name__ == "__main__":
    main()
