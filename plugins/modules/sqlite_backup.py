#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: sqlite_backup
short_description: Consistent online backup of a SQLite database to a local directory and/or S3
version_added: 0.1.0
description:
  - Takes a consistent snapshot of a live SQLite database through the SQLite backup API (never a file copy),
    so it is safe in WAL and rollback-journal modes while other processes keep writing.
  - Checks the snapshot with C(PRAGMA integrity_check), records per-table row counts in the manifest, then streams
    it through compression (and optional age encryption) to every repository in one pass, with the manifest written last.
  - The snapshot is a private scratch file in I(tmp_dir) (removed at the end); writers are held off only while it is
    copied locally, not during the upload.
  - A backup killed before it could remove its scratch file (SIGKILL, OOM, power loss) leaves it behind; every run first
    removes such leftovers of dead runs from I(tmp_dir). Scratch files are named after the process (pid and start time)
    and flocked while in use, so the file of a running backup, another user's file or a symlink is never removed.
  - In check mode it validates the database and the repository options and returns where the set would be written.
author:
  - lifeboat.backup maintainers (@lifeboat-backup)
options:
  path:
    description: The SQLite database file to back up.
    type: path
    required: true
  tmp_dir:
    description: Directory for the scratch snapshot. It needs room for one copy of the database. Default is the system temporary directory.
    type: path
  busy_timeout:
    description: Seconds to wait for a lock held by a writer before failing.
    type: float
    default: 30
extends_documentation_fragment:
  - lifeboat.backup.repository
  - lifeboat.backup.backup
attributes:
  check_mode:
    support: full
    description: Validates the source and options and reports the set it would write.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on the host that holds the database.
seealso:
  - module: lifeboat.backup.sqlite_restore
  - module: lifeboat.backup.backup_catalog
"""

EXAMPLES = r"""
- name: Back up the app database to S3 and a local directory
  lifeboat.backup.sqlite_backup:
    job: app-db
    path: /srv/app/data/app.db
    dest: /var/backups/lifeboat
    s3:
      bucket: acme-backups
      prefix: prod
    tags:
      release: "{{ app_release | default('unknown') }}"

- name: Encrypted backup to an S3-compatible store (MinIO)
  lifeboat.backup.sqlite_backup:
    job: app-db
    path: /srv/app/data/app.db
    s3:
      bucket: backups
      endpoint_url: https://minio.internal:9000
      access_key: "{{ minio_access_key }}"
      secret_key: "{{ minio_secret_key }}"
    encryption:
      age_recipients:
        - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
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
      sample: app-db
    kind:
      description: Source kind.
      type: str
      sample: sqlite
    location:
      description: Where the set is, per repository (C(local) directory, C(s3) URL).
      type: dict
      sample: {"local": "/var/backups/lifeboat/app-db/20261122T031500Z-3f9a0c", "s3": "s3://acme-backups/prod/app-db/20261122T031500Z-3f9a0c/"}
    size:
      description: Stored bytes, after compression and encryption.
      type: int
      sample: 1048576
    sha256:
      description: sha256 of the stored data object.
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    manifest:
      description: The manifest document written with the set (integrity_check and row counts under C(verification)).
      type: dict
      sample: {"kind": "sqlite", "verification": {"integrity_check": "ok", "row_counts": {"orders": 120000}}}
plan:
  description: In check mode, what would be written.
  returned: check mode
  type: dict
  sample: {"job": "app-db", "data": "data.db.zst", "location": {"local": "/var/backups/lifeboat/app-db/<new set id>"}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.sqlite import options as sqlite_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.sqlite.kind import source_from_options
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, backup_spec, run_backup_module)


def main():
    spec = backup_spec()
    spec.update(argument_spec(sqlite_options.BACKUP))
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    run_backup_module(module, source_from_options)


if __name__ == "__main__":
    main()
