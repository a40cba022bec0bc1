#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: redis_backup
short_description: Consistent backup of a Redis server (BGSAVE snapshot) to a local directory and/or S3
version_added: 0.1.0
description:
  - Asks Redis for a background save (C(BGSAVE SCHEDULE)), waits until C(LASTSAVE) moves past the time of the request
    (a save already in progress is waited out and BGSAVE issued again, so the snapshot is never older than the task),
    then streams the RDB file through compression (and optional age encryption) to every repository, manifest last.
  - The RDB file is found through C(CONFIG GET dir) and C(CONFIG GET dbfilename), or given as I(rdb_path). It must be
    readable on the host the task runs on, so run the task on the Redis host.
  - The manifest records the key count of every database (C(INFO keyspace)) right after the save, and in the same
    C(INFO) reply the changes Redis counted since the snapshot was taken (C(rdb_changes_since_last_save)) plus the
    keys that expired or were evicted meanwhile, as C(keys_tolerance), that is how far the snapshot's counts can lie from
    the recorded ones when applications write during the backup. M(lifeboat.backup.redis_restore) checks the
    restored server against both.
  - With I(verify=true) the snapshot is checked with C(redis-check-rdb) when it is installed (Debian package C(redis-tools), which
    C(redis-server) depends on); a file that fails is not stored.
  - In check mode it connects, authenticates and locates the RDB file, and returns where the set would be written.
author:
  - lifeboat.backup contributors (@lifeboat-backup)
options:
  rdb_path:
    description:
      - The RDB file of the server. Default is C(dir)/C(dbfilename) as reported by C(CONFIG GET).
      - Needed when C(CONFIG) is renamed or not allowed for I(redis_user).
    type: path
  bgsave_timeout:
    description: Seconds to wait for the background save to finish.
    type: int
    default: 3600
extends_documentation_fragment:
  - lifeboat.backup.redis
  - lifeboat.backup.repository
  - lifeboat.backup.backup
attributes:
  check_mode:
    support: full
    description: Validates the connection and options and reports the set it would write.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on the host of the Redis server (the RDB file is read locally).
seealso:
  - module: lifeboat.backup.redis_restore
  - module: lifeboat.backup.backup_catalog
"""

EXAMPLES = r"""
- name: Back up the local Redis to S3
  lifeboat.backup.redis_backup:
    job: cache
    redis_password: "{{ vault_redis_password }}"
    s3:
      bucket: acme-backups
      prefix: prod
  become: true

- name: Back up through a Unix socket with an ACL user, to a local directory
  lifeboat.backup.redis_backup:
    job: sessions
    redis_socket: /run/redis/redis-server.sock
    redis_user: backup
    redis_password: "{{ vault_redis_backup_password }}"
    rdb_path: /var/lib/redis/dump.rdb
    dest: /var/backups/lifeboat
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
      sample: cache
    kind:
      description: Source kind.
      type: str
      sample: redis
    location:
      description: Where the set is, per repository (C(local) directory, C(s3) URL).
      type: dict
      sample: {"s3": "s3://acme-backups/prod/cache/20261122T031500Z-3f9a0c/"}
    size:
      description: Stored bytes, after compression and encryption.
      type: int
      sample: 517552
    sha256:
      description: sha256 of the stored data object.
      type: str
      sample: cca1f3e6ef1161b9e0d0098bdd8f60866d1703a4843a83420b5cc94d2d20ab0d
    manifest:
      description: The manifest document; C(verification) holds the key counts per database.
      type: dict
      sample: {"kind": "redis", "verification": {"keys": {"db0": 100000}, "expires": {"db0": 0}, "keys_tolerance": 0,
               "keys_stable": true, "rdb_version": "0010", "rdb_bytes": 1477904, "rdb_check": "ok"}}
plan:
  description: In check mode, what would be written.
  returned: check mode
  type: dict
  sample: {"job": "cache", "data": "data.rdb.zst", "location": {"local": "/var/backups/lifeboat/cache/<new set id>"}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.redis import options as redis_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.redis.kind import source_from_options
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, backup_spec, run_backup_module)


def main():
    spec = backup_spec()
    spec.update(argument_spec(redis_options.BACKUP))
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    run_backup_module(module, source_from_options)


if __name__ == "__main__":
    main()
