#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: dir_snapshot
short_description: Snapshot a directory (uploads, ChromaDB store) as a streamed tar to a local directory and/or S3
version_added: 0.1.0
description:
  - Streams a POSIX (pax) tar of I(path) through compression (and optional age encryption) to every repository,
    manifest last, with bounded memory whatever the file sizes. Modes, owners (names and ids), mtimes (whole seconds)
    and symlinks (as symlinks, never followed) are kept. Sockets, FIFOs and device files are skipped and listed in the manifest.
  - SQLite databases inside the tree (files starting with C(SQLite format 3)) are captured through the SQLite backup API,
    so each is consistent while applications write to it; their C(-wal), C(-shm) and C(-journal) files are skipped.
    They are written after every other file, so a ChromaDB store's C(chroma.sqlite3) (its write-ahead queue) is at least
    as new as its segment files.
  - The manifest records the number of files, directories and symlinks, the total bytes, and integrity_check and row
    counts of every SQLite database; M(lifeboat.backup.dir_restore) checks the restored tree against them.
  - Files that change while they are read (size, or mtime or ctime in nanoseconds, so a same-size rewrite in place
    too) are stored as read and listed under C(changed) in the manifest. For an exact snapshot of files other than
    SQLite databases, pause the writers.
  - A tree nested more than 512 levels deep fails the snapshot before anything is stored (M(lifeboat.backup.dir_restore)
    restores at most 512 levels); exclude the deep part.
  - In check mode it validates the directory and options and returns where the set would be written.
author:
  - lifeboat.backup contributors (@lifeboat-backup)
options:
  path:
    description: The directory to snapshot.
    type: path
    required: true
  exclude:
    description:
      - Glob patterns of entries to leave out. A pattern without C(/) matches an entry's name at any depth (C(*.tmp),
        C(cache)); a pattern with C(/) matches the path relative to I(path) (C(tmp/*)), where C(*) also matches C(/)
        and a leading C(/) only anchors it. A trailing C(/) matches directories only (C(cache/)).
      - An excluded directory is not descended into.
    type: list
    elements: str
    default: []
  sqlite:
    description: Capture SQLite databases through the backup API. Set to false to copy them as plain files.
    type: bool
    default: true
  tmp_dir:
    description: Directory for the scratch copy of one SQLite database at a time. Default is the system temporary directory.
    type: path
  busy_timeout:
    description: Seconds to wait for a lock held by a SQLite writer before failing.
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
    description: Runs on the host that holds the directory.
seealso:
  - module: lifeboat.backup.dir_restore
  - module: lifeboat.backup.sqlite_backup
"""

EXAMPLES = r"""
- name: Snapshot the uploads directory without caches
  lifeboat.backup.dir_snapshot:
    job: uploads
    path: /srv/app/uploads
    exclude:
      - "*.tmp"
      - ".cache/"
    s3:
      bucket: acme-backups
      prefix: prod
  become: true

- name: Snapshot a live ChromaDB persistent store
  lifeboat.backup.dir_snapshot:
    job: chroma
    path: /srv/rag/chroma
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
      sample: uploads
    kind:
      description: Source kind.
      type: str
      sample: directory
    location:
      description: Where the set is, per repository (C(local) directory, C(s3) URL).
      type: dict
      sample: {"s3": "s3://acme-backups/prod/uploads/20261122T031500Z-3f9a0c/"}
    size:
      description: Stored bytes, after compression and encryption.
      type: int
      sample: 3008676
    sha256:
      description: sha256 of the stored data object.
      type: str
      sample: 1046e329f5d5424a9c5821c8fec8db4a4d2377ff4d38fe665ded4561ea7df904
    manifest:
      description: The manifest document; C(verification) holds the counts and the SQLite checks.
      type: dict
      sample: {"kind": "directory", "verification": {"files": 3, "directories": 2, "symlinks": 1, "total_bytes": 3020485,
               "sqlite": {"chroma.sqlite3": {"integrity_check": "ok", "row_counts": {"embeddings": 120}}}}}
plan:
  description: In check mode, what would be written.
  returned: check mode
  type: dict
  sample: {"job": "uploads", "data": "data.tar.zst", "location": {"local": "/var/backups/lifeboat/uploads/<new set id>"}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.directory import options as directory_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.directory.kind import source_from_options
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, backup_spec, run_backup_module)


def main():
    spec = backup_spec()
    spec.update(argument_spec(directory_options.BACKUP))
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    run_backup_module(module, source_from_options)


if __name__ == "__main__":
    main()
