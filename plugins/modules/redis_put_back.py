#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: redis_put_back
short_description: Undo a Redis restore, putting back the RDB file it replaced and restarting Redis on it
version_added: 0.1.0
description:
  - M(lifeboat.backup.redis_restore) keeps the RDB file it replaced as C(<rdb>.lifeboat-prev-<time>-<hex>) and returns that
    path as C(previous). When the restored data turns out wrong after the restore (the application fails its health
    check, say), this module moves that file back over the restored one and restarts Redis on it.
  - When the server runs, its save points are switched off first (C(CONFIG SET save ""), and a C(save) flag of
    C(shutdown-on-sigterm)/C(shutdown-on-sigint) becomes C(nosave)), so the restart's shutdown cannot save the
    rejected data over the file put back; the server's configuration brings them back at start.
    Writes made since the restore are lost, as with any rollback, so stop the applications first.
  - The server must load the RDB the file belongs to (C(CONFIG GET dir) and C(dbfilename)); otherwise nothing changes.
    When Redis is stopped, the file is put back and I(restart_command) starts it.
  - The C(restore.yml) runbook calls it when a health check fails after a Redis restore.
  - In check mode the file and the server are checked; nothing changes.
author:
  - lifeboat.backup contributors (@lifeboat-backup)
options:
  previous:
    description:
      - The RDB file kept aside, as M(lifeboat.backup.redis_restore) returned it in C(previous)
        (C(<rdb>.lifeboat-prev-<time>-<hex>)). It goes back to C(<rdb>).
    type: path
    required: true
extends_documentation_fragment:
  - lifeboat.backup.redis
  - lifeboat.backup.redis.restart
attributes:
  check_mode:
    support: full
    description: Checks the file and the server; changes nothing.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on the host of the Redis server.
seealso:
  - module: lifeboat.backup.redis_restore
"""

EXAMPLES = r"""
- name: Restore the cache from last night
  lifeboat.backup.redis_restore:
    job: cache
    before: "2026-11-22T02:00:00Z"
    dest: /var/backups/lifeboat
  register: restored
  become: true

- name: The application rejects it, so put the replaced RDB back
  lifeboat.backup.redis_put_back:
    previous: "{{ restored.previous }}"
  become: true
"""

RETURN = r"""
restored_to:
  description: The RDB file the previous data went back to.
  returned: success
  type: str
  sample: /var/lib/redis/dump.rdb
previous:
  description: Where that data was kept until it was put back.
  returned: success
  type: str
  sample: /var/lib/redis/dump.rdb.lifeboat-prev-20261122T091500Z-3f9a0c1d
restart_command:
  description: The command that restarted Redis.
  returned: success
  type: list
  elements: str
  sample: ["systemctl", "restart", "redis-server"]
keys:
  description: Keys per database once Redis came back on the data put back (null in check mode).
  returned: success
  type: dict
  sample: {"db0": 100000}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.redis import options as redis_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.redis.connection import connection_from_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.redis.restore import put_back_redis
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import run_module


def main():
    spec = argument_spec(redis_options.CONNECTION + redis_options.RESTART + redis_options.PUT_BACK)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params

    def action():
        return put_back_redis(connection_from_options(params), params["previous"],
                              service_name=params["service_name"], restart_command=params["restart_command"],
                              start_timeout=params["start_timeout"], check_mode=module.check_mode)

    run_module(module, action)


if __name__ == "__main__":
    main()
