#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: dir_restore
short_description: Restore a directory from a lifeboat snapshot into a new tree, verify it, then swap it into place
version_added: 0.1.0
description:
  - Finds a set of I(job) (the latest, a given id, or the newest before a time) and extracts it, streaming, into a new
    sibling directory C(.<name>.lifeboat-restore-*) of I(path) while checking its sha256 against the manifest.
  - The set is untrusted input. Members with absolute paths, C(..) segments, paths below a symlink of the archive, a
    directory member where the archive made a symlink, hard links, devices and FIFOs, and members nested more than
    512 levels deep are refused (path traversal); the task fails and the live tree is untouched.
  - Symlinks are restored as symlinks and never followed; every directory below the staging tree is opened without
    following symlinks, files are created with C(O_EXCL|O_NOFOLLOW), and owners, modes and mtimes are set on the open
    file or directory (C(lchown) for symlinks), so nothing outside the restored tree is written, chmod'ed or chown'ed.
  - Setuid bits, and setgid bits of files, are removed unless I(keep_setuid=true); the result lists the entries
    concerned and warns. Setgid on directories (group inheritance) and sticky bits are kept.
  - Staging directories that a killed restore left beside I(path) (or in I(tmp_dir) in check mode) are removed by the
    next restore; a running restore holds a lock on its own, so it is never taken for a leftover.
  - The new tree must match the manifest (number of files, directories and symlinks, total bytes) and every SQLite
    database in it must pass C(PRAGMA integrity_check) with the recorded row counts. Only then the live tree is renamed
    aside to C(<path>.lifeboat-prev-<time>-<hex>) and the new one renamed into place; if that fails the live tree is put back.
  - Entries excluded at snapshot time are not in the restored tree (they stay in the previous tree kept aside).
  - Owners are restored (by name, else by id) when the task runs as root, before the modes; otherwise files belong to
    the task's user.
  - On any failure the live tree is left as it was and no staging directory remains.
  - Stop the application that uses the directory first.
  - In check mode the set is extracted and verified in the system temporary directory (or I(tmp_dir)); nothing beside
    I(path) changes.
author:
  - lifeboat.backup contributors (@lifeboat-backup)
options:
  path:
    description: The directory to restore. Missing parent directories are created. A symlink to a directory is resolved and its target replaced.
    type: path
    required: true
  keep_previous:
    description: Keep the replaced tree as C(<path>.lifeboat-prev-<time>-<hex>). Set to false to delete it once the restore succeeded.
    type: bool
    default: true
  numeric_owner:
    description: Restore owners by the numeric ids in the archive instead of looking up the user and group names.
    type: bool
    default: false
  keep_setuid:
    description:
      - Restore the setuid and setgid bits recorded in the set. By default they are removed, so that a set written by
        whoever can write to the repository cannot plant a setuid-root program on this host.
      - Set to true only for a set you trust that holds such programs on purpose.
    type: bool
    default: false
    version_added: 0.2.0
  tmp_dir:
    description: Where check mode extracts the set. Default is the system temporary directory.
    type: path
extends_documentation_fragment:
  - lifeboat.backup.repository
  - lifeboat.backup.restore
attributes:
  check_mode:
    support: full
    description: Extracts and verifies the set without touching I(path).
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on the host where the directory is restored.
seealso:
  - module: lifeboat.backup.dir_snapshot
  - module: lifeboat.backup.backup_catalog
"""

EXAMPLES = r"""
- name: Restore the latest uploads snapshot and drop the previous tree
  lifeboat.backup.dir_restore:
    job: uploads
    path: /srv/app/uploads
    keep_previous: false
    s3:
      bucket: acme-backups
      prefix: prod
  become: true

- name: Restore a ChromaDB store as it was before an incident
  lifeboat.backup.dir_restore:
    job: chroma
    path: /srv/rag/chroma
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
  description: The set restored, in the same shape as M(lifeboat.backup.dir_snapshot) returns.
  returned: success
  type: dict
  sample: {"id": "20261122T031500Z-3f9a0c", "job": "uploads", "kind": "directory", "size": 3008676}
restored_to:
  description: The restored directory.
  returned: success
  type: str
  sample: /srv/app/uploads
previous:
  description: Where the replaced tree was kept, or null when there was none or I(keep_previous=false).
  returned: success
  type: str
  sample: /srv/app/uploads.lifeboat-prev-20261122T091500Z-3f9a0c1d
setuid_stripped:
  description: Entries (the first 50) whose setuid/setgid bits were removed because I(keep_setuid) is false.
  returned: when bits were removed
  type: list
  elements: str
  sample: ["bin/tool"]
verification:
  description: Checks passed by the restored tree before it replaced anything.
  returned: success
  type: dict
  sample: {"sha256": "ok", "files": 3, "directories": 2, "symlinks": 1, "total_bytes": 3020485, "sqlite": {"db/app.sqlite3": "ok"}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.directory import options as directory_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.directory.kind import restore_from_options
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, check_restore_selection, repository_from_params, restore_spec, run_module)


def main():
    spec = restore_spec()
    spec.update(argument_spec(directory_options.RESTORE))
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    params = module.params

    def action():
        check_restore_selection(params)
        result = restore_from_options(repository_from_params(params), params, check_mode=module.check_mode)
        return dict(changed=True, **result)

    run_module(module, action)


if __name__ == "__main__":
    main()
