#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: redis_restore
short_description: Restore a Redis server from a lifeboat backup set by placing the RDB file and restarting
version_added: 0.1.0
description:
  - Finds a set of I(job) (the latest, a given id, or the newest before a time), downloads it beside the server's RDB
    file while checking its sha256 against the manifest, and checks the copy (RDB header, and C(redis-check-rdb) when
    installed) before anything live is touched.
  - When the server runs, the live data is saved first (C(BGSAVE)) so the copy kept aside is current, save points are
    switched off (C(CONFIG SET save ""), and a C(save) flag of C(shutdown-on-sigterm)/C(shutdown-on-sigint) becomes
    C(nosave)) so the restart, SIGTERM from systemd included, cannot write the live data over the restored file, the
    RDB is swapped in atomically (the previous one kept as C(<rdb>.lifeboat-prev-<time>-<hex>)), and I(restart_command)
    restarts the server.
  - The RDB path comes from the running server (C(CONFIG GET dir) and C(dbfilename)) or I(rdb_path), never from the
    set; nothing of the set is run (no C(EVAL), no C(redis-cli)); the file is placed and Redis loads it.
  - After the restart the key count of every database must lie within what the manifest recorded, the writes Redis
    counted during the backup (C(keys_tolerance)) included; keys with a TTL may have expired. A server left empty
    while the set had keys without a TTL always fails. So does a restart whose stop path saved the running data over
    the placed file before the new server loaded it. In each case, and when the server does not come back within
    I(start_timeout), the previous RDB is put back, the server restarted on it, and the task fails saying so.
  - Fails without changing anything when the server has C(appendonly yes) (Redis would load the AOF and ignore the RDB)
    or is a replica.
  - Stop the applications that write to Redis first; writes after the pre-restore save are lost.
  - In check mode the set is downloaded and verified in the system temporary directory; nothing on the server changes.
author:
  - lifeboat.backup contributors (@lifeboat-backup)
options:
  rdb_path:
    description:
      - The RDB file the server loads at start. Default is C(dir)/C(dbfilename) as reported by C(CONFIG GET).
      - Required when the server is not running (then I(restart_command) starts it), or when C(CONFIG) is not allowed.
    type: path
  owner:
    description: Owner of the restored RDB file. Default is the owner of the file it replaces, else the owner of its directory.
    type: str
  group:
    description: Group of the restored RDB file. Default is the group of the file it replaces, else the group of its directory.
    type: str
  mode:
    description: Mode of the restored RDB file, such as C('0640'). Default is the mode of the file it replaces, else C(0640).
    type: raw
  keep_previous:
    description:
      - Save the live data and keep the replaced RDB as C(<rdb>.lifeboat-prev-<time>-<hex>).
      - Set to false to skip the pre-restore save and discard the replaced file once the restore succeeded.
    type: bool
    default: true
  allow_key_mismatch:
    description:
      - After the restart the key count of every database must lie within what the manifest recorded (the counts
        and the writes Redis counted during the backup); otherwise the previous RDB is put back and the task fails.
      - Set to true to keep the restored data with a warning instead. Only for a set you trust, for example one
        made by lifeboat 0.1.0 (which recorded no bound for the writes during the backup) while Redis was written to.
    type: bool
    default: false
  allow_functions:
    description:
      - An RDB may hold Redis Functions libraries (Redis 7), Lua code that the server runs when it loads the file.
        By default a set whose RDB holds any is refused before anything is changed, as every set is untrusted input.
      - Set to true when the application uses Redis Functions (C(FUNCTION LOAD), C(FCALL)) and you trust the set.
    type: bool
    default: false
extends_documentation_fragment:
  - lifeboat.backup.redis
  - lifeboat.backup.redis.restart
  - lifeboat.backup.repository
  - lifeboat.backup.restore
attributes:
  check_mode:
    support: full
    description: Downloads and verifies the set without touching the server.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on the host of the Redis server.
seealso:
  - module: lifeboat.backup.redis_backup
  - module: lifeboat.backup.backup_catalog
"""

EXAMPLES = r"""
- name: Restore the latest set and restart the Debian service
  lifeboat.backup.redis_restore:
    job: cache
    redis_password: "{{ vault_redis_password }}"
    s3:
      bucket: acme-backups
      prefix: prod
  become: true

- name: Disaster recovery on a fresh host where Redis is stopped
  lifeboat.backup.redis_restore:
    job: cache
    rdb_path: /var/lib/redis/dump.rdb
    owner: redis
    group: redis
    service_name: redis
    dest: /var/backups/lifeboat
  become: true
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
  description: The set restored, in the same shape as M(lifeboat.backup.redis_backup) returns.
  returned: success
  type: dict
  sample: {"id": "20261122T031500Z-3f9a0c", "job": "cache", "kind": "redis", "size": 517552}
restored_to:
  description: The RDB file that was replaced.
  returned: success
  type: str
  sample: /var/lib/redis/dump.rdb
previous:
  description: Where the replaced RDB was kept, or null when there was none or I(keep_previous=false).
  returned: success
  type: str
  sample: /var/lib/redis/dump.rdb.lifeboat-prev-20261122T091500Z-3f9a0c1d
restart_command:
  description: The command that restarted Redis.
  returned: success
  type: list
  elements: str
  sample: ["systemctl", "restart", "redis-server"]
verification:
  description: Checks passed by the restored data.
  returned: success
  type: dict
  sample: {"sha256": "ok", "rdb_version": "0010", "rdb_check": "ok", "functions": false, "keys": {"db0": 100000},
           "keys_loaded": 100000, "keys_tolerance": 0, "keys_match": true}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.redis import options as redis_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.redis.kind import restore_from_options
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, check_restore_selection, repository_from_params, restore_spec, run_module)


def main():
    spec = restore_spec()
    spec.update(argument_spec(redis_options.RESTORE))
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    params = module.params

    def action():
        check_restore_selection(params)
        result = restore_from_options(repository_from_params(params), params, check_mode=module.check_mode)
        for warning in result.pop("warnings", []):
            module.warn(warning)
        return dict(changed=True, **result)

    run_module(module, action)


if __name__ == "__main__":
    main()
