#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: backup_verify
short_description: Check that a backup set can be restored, without touching live data
version_added: 0.1.0
description:
  - Finds a set of I(job) (the latest, a given id, or the newest before a time), downloads its data object, checks its
    size and sha256 against the manifest, decrypts and decompresses it to the end.
  - For SQLite sets it also restores the database into a scratch file and checks it with C(PRAGMA integrity_check)
    and against the row counts recorded in the manifest; the scratch file is removed afterwards.
  - By default every repository holding the set complete (local directory and S3) is checked, so a damaged copy in
    one of them is found.
  - Fails, naming the copy and the check, when anything does not match. Changes nothing.
author:
  - lifeboat.backup maintainers (@lifeboat-backup)
options:
  scratch_dir:
    description: Directory for the scratch database of a SQLite test restore. Default is the system temporary directory.
    type: path
  all_copies:
    description: Verify the copy in every repository that holds the set. Set to false to check only the first (local when present).
    type: bool
    default: true
extends_documentation_fragment:
  - lifeboat.backup.repository
  - lifeboat.backup.restore
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same checks in check mode.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs where the repositories can be reached; SQLite checks use the Python sqlite3 module there.
seealso:
  - module: lifeboat.backup.backup_catalog
  - module: lifeboat.backup.sqlite_restore
"""

EXAMPLES = r"""
- name: Verify the latest set of a job in S3 and in the local repository
  lifeboat.backup.backup_verify:
    job: app-db
    dest: /var/backups/lifeboat
    s3:
      bucket: acme-backups
      prefix: prod
  register: checked

- name: Verify an encrypted set by id
  lifeboat.backup.backup_verify:
    job: app-db
    s3:
      bucket: acme-backups
    backup: 20261122T031500Z-3f9a0c
    encryption:
      age_identity_file: /root/.config/lifeboat/age.key
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
  description: The set verified.
  returned: always
  type: dict
  contains:
    id:
      description: Set id.
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
      description: Where the set is, per repository.
      type: dict
      sample: {"s3": "s3://acme-backups/prod/app-db/20261122T031500Z-3f9a0c/"}
    size:
      description: Stored bytes.
      type: int
      sample: 1048576
    sha256:
      description: sha256 of the stored data object, from the manifest.
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    manifest:
      description: The set's manifest.
      type: dict
      sample: {"kind": "sqlite"}
verification:
  description: What was checked.
  returned: always
  type: dict
  contains:
    status:
      description: C(ok) when every check passed.
      type: str
      sample: ok
    copies:
      description: Result per repository, C(ok) or the error.
      type: dict
      sample: {"local": "ok", "s3": "ok"}
    size:
      description: Stored bytes per the manifest (checked).
      type: int
      sample: 1048576
    raw_size:
      description: Decoded bytes.
      type: int
      sample: 5947392
    kind:
      description: Source kind.
      type: str
      sample: sqlite
    encrypted:
      description: Whether the set is age-encrypted (and was decrypted).
      type: bool
      sample: false
    test_restore:
      description: C(ok) when a SQLite test restore was made.
      type: str
      sample: ok
    integrity_check:
      description: SQLite C(PRAGMA integrity_check) of the test restore.
      type: str
      sample: ok
    row_counts:
      description: Rows per table of the test restore.
      type: dict
      sample: {"orders": 120000}
    row_counts_match:
      description: Whether the row counts equal those recorded in the manifest.
      type: bool
      sample: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.naming import validate_job
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.verify import verify_set
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, check_restore_selection, identity_file, repository_from_params, restore_spec, run_module)


def main():
    spec = restore_spec()
    spec.update(scratch_dir=dict(type="path"), all_copies=dict(type="bool", default=True))
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    params = module.params

    def action():
        check_restore_selection(params)
        result = verify_set(repository_from_params(params), validate_job(params["job"]), backup=params["backup"],
                            before=params["before"], identity_file=identity_file(params),
                            scratch_dir=params["scratch_dir"], all_copies=params["all_copies"])
        return dict(result, changed=False)

    run_module(module, action)


if __name__ == "__main__":
    main()
