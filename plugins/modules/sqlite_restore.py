#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: sqlite_restore
short_description: Restore a SQLite database from a lifeboat backup set, atomically, keeping the previous file
version_added: 0.1.0
description:
  - Finds a set of I(job) (the latest, a given id, or the newest before a time), downloads it while checking its
    sha256 against the manifest, and rebuilds the database in a temporary file beside I(path).
  - The copy must pass C(PRAGMA integrity_check) and match the manifest's row counts before it replaces anything.
    It is then renamed over I(path) atomically; the previous database (with its C(-wal)/C(-journal)) is kept as
    C(<path>.lifeboat-prev-<time>-<hex>) unless I(keep_previous=false). Stale C(-wal)/C(-shm) files are never left to be replayed
    onto the restored database.
  - On any failure the live database is left exactly as it was and no staging file remains.
  - Stop the application that writes to the database first (the C(playbooks/restore.yml) runbook does).
  - In check mode the set is downloaded and verified in the system temporary directory; nothing beside I(path) changes.
author:
  - lifeboat.backup maintainers (@lifeboat-backup)
options:
  path:
    description: Where to restore the database file. Missing parent directories are created.
    type: path
    required: true
  owner:
    description: Owner of the restored file. Default is the owner of the file it replaces, else the current user.
    type: str
  group:
    description: Group of the restored file. Default is the group of the file it replaces, else the current group.
    type: str
  mode:
    description: Mode of the restored file, such as C('0640'). Default is the mode of the file it replaces, else 0666 less the umask.
    type: raw
  keep_previous:
    description: Keep the replaced database as C(<path>.lifeboat-prev-<time>-<hex>). Set to false to discard it once the restore succeeded.
    type: bool
    default: true
extends_documentation_fragment:
  - lifeboat.backup.repository
  - lifeboat.backup.restore
attributes:
  check_mode:
    support: full
    description: Downloads and verifies the set without touching I(path).
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on the host where the database is restored.
seealso:
  - module: lifeboat.backup.sqlite_backup
  - module: lifeboat.backup.backup_catalog
"""

EXAMPLES = r"""
- name: Restore the latest set from S3
  lifeboat.backup.sqlite_restore:
    job: app-db
    path: /srv/app/data/app.db
    owner: app
    group: app
    mode: "0640"
    s3:
      bucket: acme-backups
      prefix: prod

- name: Go back to the state before 02:00 UTC
  lifeboat.backup.sqlite_restore:
    job: app-db
    path: /srv/app/data/app.db
    before: "2026-11-22T02:00:00Z"
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
  description: The set restored, in the same shape as M(lifeboat.backup.sqlite_backup) returns.
  returned: success
  type: dict
  sample: {"id": "20261122T031500Z-3f9a0c", "job": "app-db", "kind": "sqlite", "size": 1048576}
restored_to:
  description: The restored database file.
  returned: success
  type: str
  sample: /srv/app/data/app.db
previous:
  description: Where the replaced database was kept, or null when there was none or I(keep_previous=false).
  returned: success
  type: str
  sample: /srv/app/data/app.db.lifeboat-prev-20261122T091500Z-3f9a0c1d
verification:
  description: Checks passed by the restored copy before it replaced anything.
  returned: success
  type: dict
  sample: {"sha256": "ok", "integrity_check": "ok", "row_counts": {"orders": 120000}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.sqlite import options as sqlite_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.sqlite.restore import restore_sqlite
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, check_restore_selection, identity_file, repository_from_params, restore_spec, run_module)


def main():
    spec = restore_spec()
    spec.update(argument_spec(sqlite_options.RESTORE))
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    params = module.params

    def action():
        check_restore_selection(params)
        result = restore_sqlite(
            repository_from_params(params), params["job"], params["path"], backup=params["backup"],
            before=params["before"], identity_file=identity_file(params), owner=params["owner"],
            group=params["group"], mode=params["mode"], keep_previous=params["keep_previous"],
            check_mode=module.check_mode)
        return dict(changed=True, **result)

    run_module(module, action)


if __name__ == "__main__":
    main()
