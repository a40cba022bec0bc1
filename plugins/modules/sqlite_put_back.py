#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: sqlite_put_back
short_description: Undo a SQLite restore, putting back the database file it replaced
version_added: 0.2.0
description:
  - M(lifeboat.backup.sqlite_restore) keeps the database it replaced (with its C(-wal)/C(-journal)) as
    C(<path>.lifeboat-prev-<time>-<hex>) and returns that path as C(previous). When the restored data turns out wrong
    after the restore (the application fails its health check, say), this module puts that file back at I(path).
  - The C(-wal), C(-shm) and C(-journal) of the rejected database are removed (they would be replayed onto the
    database put back), then the kept file and its own journal files are renamed back. Nothing else is touched.
  - I(previous) must be exactly the name a restore of I(path) makes (C(<path>.lifeboat-prev-<UTC time>[-<hex>])); any
    other name, a kept copy that is not a regular file or is a symlink, and a I(path) that is not a regular file are
    refused before anything changes.
  - Writes made since the restore are lost, as with any rollback, so stop the applications first (the C(restore.yml)
    runbook does, and calls this module when a health check fails after a SQLite restore).
  - The same code serves C(lifeboat put-back) of the scheduled runner and the Kubernetes put-back Job.
  - In check mode the names are checked; nothing changes.
author:
  - lifeboat.backup contributors (@lifeboat-backup)
options:
  path:
    description:
      - The database file that was restored, as M(lifeboat.backup.sqlite_restore) returned it in C(restored_to) (the
        restore's I(path)).
    type: path
    required: true
  previous:
    description:
      - The database kept aside, as M(lifeboat.backup.sqlite_restore) returned it in C(previous)
        (C(<path>.lifeboat-prev-<time>-<hex>)). It goes back to I(path).
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: Checks both names and what they are; changes nothing.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on the host of the database file.
seealso:
  - module: lifeboat.backup.sqlite_restore
  - module: lifeboat.backup.dir_put_back
"""

EXAMPLES = r"""
- name: Restore the application database from last night
  lifeboat.backup.sqlite_restore:
    job: app-db
    path: /srv/app/data/app.db
    before: "2026-11-22T02:00:00Z"
    dest: /var/backups/lifeboat
  register: restored
  become: true

- name: The application rejects it, so put the replaced database back
  lifeboat.backup.sqlite_put_back:
    path: "{{ restored.restored_to }}"
    previous: "{{ restored.previous }}"
  become: true
"""

RETURN = r"""
restored_to:
  description: The database file the previous data went back to.
  returned: success
  type: str
  sample: /srv/app/data/app.db
previous:
  description: Where that database was kept until it was put back.
  returned: success
  type: str
  sample: /srv/app/data/app.db.lifeboat-prev-20261122T091500Z-3f9a0c1d
removed:
  description: The rejected database and its journal files, removed (in check mode, those that would be).
  returned: success
  type: list
  elements: str
  sample: ["/srv/app/data/app.db", "/srv/app/data/app.db-wal"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.sqlite import options as sqlite_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.sqlite.kind import put_back_from_options
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import run_module


def main():
    module = AnsibleModule(argument_spec=argument_spec(sqlite_options.PUT_BACK), supports_check_mode=True)
    params = module.params

    def action():
        result = put_back_from_options(params, params["previous"], check_mode=module.check_mode)
        result.pop("status", None)
        return result

    run_module(module, action)


if __name__ == "__main__":
    main()
