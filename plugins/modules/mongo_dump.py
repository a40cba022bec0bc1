#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: mongo_dump
short_description: Dump MongoDB databases or collections to a local directory and/or S3
version_added: 0.1.0
description:
  - With the MongoDB Database Tools installed (C(mongodump) 100.3 or newer on PATH), streams C(mongodump --archive)
    through compression (and optional age encryption) to every repository in one pass. The set records the format
    C(archive).
  - Without them (or when the selection needs more than one C(mongodump) run), a built-in dumper written with pymongo
    produces the mongodump directory layout (C(<db>/<collection>.bson) and C(<db>/<collection>.metadata.json) with
    indexes, options and uuid) as a tar stream. The set records the format C(tar-layout); after C(tar -x),
    C(mongorestore --dir) can read it too.
  - The manifest records per-collection document counts; M(lifeboat.backup.mongo_restore) checks them.
  - I(mongo_uri) never appears on a command line, in logs or in the manifest. C(mongodump) reads it from a
    temporary 0600 C(--config) file that is removed afterwards; the manifest keeps a copy without the password.
  - The server is contacted before anything is written; when it is down the task fails with the driver's message
    and no set is written.
  - The built-in dumper reads collections one after the other (no point-in-time snapshot across collections and no
    oplog). Each collection's BSON is spooled to I(tmp_dir) (16 MiB in memory at most) because a tar header needs
    the member's size up front, so I(tmp_dir) needs room for the largest collection.
author:
  - lifeboat.backup maintainers (@lifeboat-backup)
options:
  mongo_uri:
    description:
      - MongoDB connection string, such as C(mongodb://backup:secret@db1:27017/?authSource=admin). Default
        C(mongodb://127.0.0.1:27017).
      - When it names a user without a password, the password is read from the environment variable
        C(LIFEBOAT_MONGO_PASSWORD) of the process (as libpq reads C(PGPASSWORD)), so it need not be written in a job
        file; a password in the URI wins.
    type: str
  databases:
    description: Databases to dump (glob C(*) allowed). Default all but C(admin), C(local) and C(config).
    type: list
    elements: str
    default: []
  exclude_databases:
    description: Databases to leave out (glob allowed). Built-in dumper only.
    type: list
    elements: str
    default: []
  collections:
    description: Only these namespaces C(<database>.<collection>) (glob allowed, such as C(shop.*)).
    type: list
    elements: str
    default: []
  exclude_collections:
    description: Namespaces C(<database>.<collection>) to leave out (glob allowed).
    type: list
    elements: str
    default: []
  method:
    description:
      - C(auto) uses C(mongodump) when it is on PATH and one run can express the selection, else the built-in dumper.
      - C(mongodump) and C(builtin) force one path (C(mongodump) fails when it is missing).
    type: str
    default: auto
    choices: [auto, mongodump, builtin]
  oplog:
    description:
      - Capture the oplog during the dump (C(mongodump --oplog)) for a point-in-time copy of a replica set.
        Needs C(mongodump) and a dump of the whole instance.
    type: bool
    default: false
  server_selection_timeout_ms:
    description: How long to wait for a reachable server before failing, in milliseconds.
    type: int
    default: 5000
  tmp_dir:
    description: Directory for the per-collection spool of the built-in dumper and the C(--config) file. Default the system temporary directory.
    type: path
extends_documentation_fragment:
  - lifeboat.backup.repository
  - lifeboat.backup.backup
requirements:
  - C(mongodump) 100.3 or newer (MongoDB Database Tools), or the Python package pymongo, on the host that runs the dump.
attributes:
  check_mode:
    support: full
    description: Connects, resolves the selection and reports the set it would write.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on any host that reaches the MongoDB server.
seealso:
  - module: lifeboat.backup.mongo_restore
  - module: lifeboat.backup.backup_catalog
"""

EXAMPLES = r"""
- name: Dump every application database to S3
  lifeboat.backup.mongo_dump:
    job: mongo-prod
    mongo_uri: "mongodb://backup:{{ mongo_backup_password }}@db1.internal:27017/?authSource=admin"
    s3:
      bucket: acme-backups
      prefix: prod

- name: Dump two collections of one database to a local directory with the built-in dumper
  lifeboat.backup.mongo_dump:
    job: shop-orders
    method: builtin
    collections:
      - shop.orders
      - shop.customers
    dest: /var/backups/lifeboat

- name: Point-in-time dump of a replica set
  lifeboat.backup.mongo_dump:
    job: mongo-rs
    mongo_uri: "mongodb://backup:{{ mongo_backup_password }}@rs1,rs2,rs3/?replicaSet=rs0&authSource=admin"
    oplog: true
    method: mongodump
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
      sample: mongo-prod
    kind:
      description: Source kind.
      type: str
      sample: mongo
    location:
      description: Where the set is, per repository (C(local) directory, C(s3) URL).
      type: dict
      sample: {"s3": "s3://acme-backups/prod/mongo-prod/20261122T031500Z-3f9a0c/"}
    size:
      description: Stored bytes, after compression and encryption.
      type: int
      sample: 1048576
    sha256:
      description: sha256 of the stored data object.
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    manifest:
      description: The manifest document; C(source.format) is C(archive) or C(tar-layout), C(verification.document_counts) the documents per namespace.
      type: dict
      sample: {"kind": "mongo", "source": {"format": "tar-layout", "uri": "mongodb://backup@db1:27017/"},
               "verification": {"document_counts": {"shop.orders": 120000}}}
plan:
  description: In check mode, what would be written.
  returned: check mode
  type: dict
  sample: {"job": "mongo-prod", "data": "data.tar.zst", "location": {"local": "/var/backups/lifeboat/mongo-prod/<new set id>"}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.mongo import options as mongo_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.mongo.kind import source_from_options
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, backup_spec, run_backup_module)


def main():
    spec = backup_spec()
    spec.update(argument_spec(mongo_options.BACKUP))
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    run_backup_module(module, source_from_options)


if __name__ == "__main__":
    main()
