#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: pg_put_back
short_description: Undo a safe_swap restore of PostgreSQL, putting back the database it replaced
version_added: 0.1.0
description:
  - A C(safe_swap) restore by M(lifeboat.backup.pg_restore_s3) keeps the database it replaced as
    C(<database>_lbprev_<hex>) and returns that name as C(previous). When the restored data turns out wrong after
    the swap (the application fails its health check, say), this module gives the kept database its name back.
  - The restored database and the kept one swap names in one transaction (all or nothing); the restored one becomes
    C(<database>_lbfailed_<hex>) and is then dropped, unless I(keep_rejected=true).
  - Other sessions on I(database) block the rename; the module fails and says so, or with
    I(terminate_connections=true) refuses new connections, ends those sessions and swaps.
  - The C(restore.yml) runbook calls it when a health check fails after a C(safe_swap) restore.
  - In check mode both databases are looked up and nothing is renamed.
author:
  - lifeboat.backup contributors (@lifeboat-backup)
options:
  database:
    description: The database that was restored (the name the application uses).
    type: str
    required: true
    aliases: [db]
  previous:
    description:
      - The database the restore replaced, as M(lifeboat.backup.pg_restore_s3) returned it in C(previous)
        (C(<database>_lbprev_<hex>)). Other names are refused, so no unrelated database is renamed by mistake.
    type: str
    required: true
  keep_rejected:
    description: Keep the restored database as C(<database>_lbfailed_<hex>) (returned in C(rejected)) instead of dropping it.
    type: bool
    default: false
  terminate_connections:
    description: End other sessions on I(database) right before the swap instead of failing.
    type: bool
    default: false
extends_documentation_fragment:
  - lifeboat.backup.postgres
attributes:
  check_mode:
    support: full
    description: Looks both databases up; renames nothing.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on a host with C(psql) and network access to the server.
seealso:
  - module: lifeboat.backup.pg_restore_s3
"""

EXAMPLES = r"""
- name: Restore last night's set in place of the live database
  lifeboat.backup.pg_restore_s3:
    job: app-pg
    database: app
    safe_swap: true
    s3: {bucket: acme-backups, prefix: prod}
  register: restored

- name: The application rejects it, so put the replaced database back
  lifeboat.backup.pg_put_back:
    database: app
    previous: "{{ restored.previous }}"
    terminate_connections: true
"""

RETURN = r"""
database:
  description: The database name that was put back.
  returned: success
  type: str
  sample: app
previous:
  description: The name the replaced database had until it was put back.
  returned: success
  type: str
  sample: app_lbprev_1a2b3c
rejected:
  description: The name the restored database got when it was moved aside, or null when it no longer existed.
  returned: success
  type: str
  sample: app_lbfailed_4d5e6f
rejected_dropped:
  description:
    - Whether the rejected restored database was dropped (false with I(keep_rejected) and in check mode).
    - False with a warning when the drop failed after the put-back; drop it by hand.
  returned: success
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.postgres.connection import Connection
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.postgres.options import (
    CONNECTION_MUTUALLY_EXCLUSIVE, connection_spec)
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.postgres.swap import put_back
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import run_module


def main():
    spec = connection_spec()
    spec.update(
        database=dict(type="str", required=True, aliases=["db"]),
        previous=dict(type="str", required=True),
        keep_rejected=dict(type="bool", default=False),
        terminate_connections=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=spec, mutually_exclusive=CONNECTION_MUTUALLY_EXCLUSIVE,
                           supports_check_mode=True)
    params = module.params

    def action():
        result = put_back(Connection.from_options(params), params["database"], params["previous"],
                          terminate_connections=params["terminate_connections"],
                          keep_rejected=params["keep_rejected"], check_mode=module.check_mode)
        for warning in result.pop("warnings", []):
            module.warn(warning)
        return result

    run_module(module, action)


if __name__ == "__main__":
    main()
