#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: mongo_restore
short_description: Restore MongoDB databases or collections from a lifeboat backup set
version_added: 0.1.0
description:
  - Finds a set of I(job) written by M(lifeboat.backup.mongo_dump) (the latest, a given id, or the newest before a
    time), downloads it to I(tmp_dir) while checking its sha256 against the manifest, then restores it with the
    path matching the format the manifest records.
  - C(tar-layout) sets (built-in dumper) are restored with pymongo. Before the server is touched every BSON
    document's framing is checked and the per-collection document counts are compared with the manifest; after the
    restore each collection's count is checked again and indexes are rebuilt from the metadata.
  - A set is untrusted input even with a good sha256. Before the server is touched every tar member must be a
    regular file named C(<database>/<collection>.bson) or C(.metadata.json) (or a database directory), every
    database and collection name must be valid and not a C(system.*) collection, the collections must be those
    the manifest lists, collections of C(admin), C(local) and C(config) are restored only when that database is
    named exactly in I(databases), and metadata may carry only the collection and index options lifeboat
    re-creates and no server-side JavaScript (see I(allow_javascript)). Views and validators the set defines
    are reported in a warning and in I(collections).
  - C(archive) sets (C(mongodump --archive)) are restored with C(mongorestore --archive --stopOnError), which reads
    I(mongo_uri) from a temporary 0600 C(--config) file. Before it starts, the collection metadata in the archive's
    prelude is checked as for C(tar-layout) sets; it gets one exact C(--nsInclude) per namespace the manifest lists
    (and the archive's views) and the selection keeps, and C(--nsExclude=*.system.*); system collections and
    C(admin), C(local), C(config) not named in I(databases) are left out with a warning. Its per-collection
    counts are compared with the manifest.
  - Collections that already exist and hold documents are replaced only with I(drop=true) (dropped right before
    their documents are inserted); otherwise the task fails before anything changes. Collections created by a
    restore that then fails are dropped again. A collection already replaced when a later one fails stays
    replaced; restore into another database with I(rename) first when that matters.
  - In check mode the set is downloaded and verified and the server is asked which collections would be replaced;
    nothing is written to the server.
author:
  - lifeboat.backup maintainers (@lifeboat-backup)
options:
  mongo_uri:
    description:
      - MongoDB connection string of the server to restore into. Default C(mongodb://127.0.0.1:27017).
      - When it names a user without a password, the password is read from the environment variable
        C(LIFEBOAT_MONGO_PASSWORD) of the process (as libpq reads C(PGPASSWORD)), so it need not be written in a job
        file; a password in the URI wins.
    type: str
  databases:
    description: Restore only these databases of the set (glob allowed). Default all of them.
    type: list
    elements: str
    default: []
  collections:
    description: Restore only these namespaces C(<database>.<collection>) of the set (glob allowed). Names are those in the set, before I(rename).
    type: list
    elements: str
    default: []
  drop:
    description: Drop each target collection right before restoring it. Without it, target collections that hold documents make the task fail.
    type: bool
    default: false
  rename:
    description: Restore databases under other names, a dict that maps each source database to its target database (for example C(shop) to C(shop_restored)).
    type: dict
    default: {}
  oplog_replay:
    description:
      - Replay the oplog captured with I(oplog=true) (C(mongorestore --oplogReplay)). Only for the whole set (no
        I(databases), I(collections) or I(rename)).
      - Off unless set to true, whatever the set says, as oplog entries are operations the server applies and may
        write to any namespace, not only the restored ones. A set that holds an oplog which is not replayed
        gives a warning.
    type: bool
  allow_javascript:
    description:
      - A set's collection metadata may hold server-side JavaScript (C($where), C($function), C($accumulator) or
        code values) in validators, view pipelines or index filters, which the server would run. Every set is
        untrusted input, so by default such a set is refused before anything is changed.
      - Set to true only for a set you trust whose collections use it. Applies to both formats (the metadata of an
        C(archive) set is read from its prelude before C(mongorestore) starts).
    type: bool
    default: false
  server_selection_timeout_ms:
    description: How long to wait for a reachable server before failing, in milliseconds.
    type: int
    default: 5000
  tmp_dir:
    description: Directory where the set is staged (it needs room for the uncompressed dump). Default the system temporary directory.
    type: path
extends_documentation_fragment:
  - lifeboat.backup.repository
  - lifeboat.backup.restore
requirements:
  - pymongo for C(tar-layout) sets; C(mongorestore) 100.3 or newer for C(archive) sets.
attributes:
  check_mode:
    support: full
    description: Downloads and verifies the set and reports what would be replaced, without writing to the server.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on any host that reaches the MongoDB server.
seealso:
  - module: lifeboat.backup.mongo_dump
  - module: lifeboat.backup.backup_catalog
"""

EXAMPLES = r"""
- name: Restore the latest set, replacing the collections it holds
  lifeboat.backup.mongo_restore:
    job: mongo-prod
    mongo_uri: "mongodb://restore:{{ mongo_restore_password }}@db1.internal:27017/?authSource=admin"
    drop: true
    s3:
      bucket: acme-backups
      prefix: prod

- name: Restore one collection into a scratch database to inspect it
  lifeboat.backup.mongo_restore:
    job: mongo-prod
    collections:
      - shop.orders
    rename:
      shop: shop_inspect
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
  description: The set restored, in the same shape as M(lifeboat.backup.mongo_dump) returns.
  returned: success
  type: dict
  sample: {"id": "20261122T031500Z-3f9a0c", "job": "mongo-prod", "kind": "mongo", "size": 1048576}
restored_to:
  description: The server restored into, without credentials.
  returned: success
  type: str
  sample: mongodb://restore@db1.internal:27017/?authSource=admin
format:
  description: Format of the set, C(archive) or C(tar-layout).
  returned: success
  type: str
  sample: tar-layout
method:
  description: How it was restored, C(builtin) (pymongo) or C(mongorestore).
  returned: success
  type: str
  sample: builtin
collections:
  description:
    - Each collection restored, from the set's namespace to the target one, with its document count.
    - C(view_on) and C(pipeline_stages) for a view the set defines, C(validator) when it defines a document
      validator.
  returned: success
  type: list
  elements: dict
  sample: [{"source": "shop.orders", "target": "shop_inspect.orders", "documents": 120000, "replaces": false},
           {"source": "shop.open_orders", "target": "shop_inspect.open_orders", "documents": 0, "replaces": false,
            "view_on": "shop.orders", "pipeline_stages": 1}]
verification:
  description: Checks passed; C(document_counts) are counted on the server after the restore.
  returned: success
  type: dict
  sample: {"sha256": "ok", "document_counts": {"shop.orders": 120000}, "indexes": {"shop.orders": 3}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.mongo import options as mongo_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.mongo.kind import restore_from_options
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, check_restore_selection, repository_from_params, restore_spec, run_module)


def main():
    spec = restore_spec()
    spec.update(argument_spec(mongo_options.RESTORE))
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    params = module.params

    def action():
        check_restore_selection(params)
        result = restore_from_options(repository_from_params(params), params, check_mode=module.check_mode)
        return dict(changed=True, **result)

    run_module(module, action)


if __name__ == "__main__":
    main()
