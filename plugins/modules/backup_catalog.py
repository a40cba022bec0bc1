#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: backup_catalog
short_description: List the backup sets of a job, local and on S3, newest first
version_added: 0.1.0
description:
  - Lists every set of I(job) in the configured repositories, merged by set id, newest first, with its time,
    size, status and the verification recorded in its manifest.
  - A set is C(complete) when its manifest exists, C(incomplete) when it has none (a failed or running backup),
    and C(invalid) when its manifest cannot be read or the set is dated more than an hour after this host's clock.
  - Reads only; it never changes anything.
author:
  - lifeboat.backup maintainers (@lifeboat-backup)
options:
  status:
    description: Only return sets with these statuses. Default is every status.
    type: list
    elements: str
    choices: [complete, incomplete, invalid]
extends_documentation_fragment:
  - lifeboat.backup.repository
attributes:
  check_mode:
    support: full
    description: Read-only; check mode changes nothing.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs where the repositories can be reached.
seealso:
  - module: lifeboat.backup.sqlite_backup
"""

EXAMPLES = r"""
- name: List the complete sets of a job
  lifeboat.backup.backup_catalog:
    job: app-db
    dest: /var/backups/lifeboat
    s3:
      bucket: acme-backups
      prefix: prod
    status: [complete]
  register: catalog

- name: Show the newest set
  ansible.builtin.debug:
    msg: "{{ catalog.latest.id }} finished {{ catalog.latest.finished }}"
"""

RETURN = r"""
sets:
  description: Sets of the job, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Set id.
      type: str
      sample: 20261122T031500Z-3f9a0c
    status:
      description:
        - C(complete), C(incomplete) (no manifest yet, from a failed or running backup) or C(invalid) (damaged, that is
          the manifest exists but is not valid JSON, has a field of the wrong type or range, names a data object outside
          the set layout, describes another set, or is dated more than an hour after this host's clock, because of a
          wrong clock on the writer or a set forged to stay the newest). Each invalid set is also named in a warning.
      type: str
      sample: complete
    error:
      description: Why an C(invalid) set is damaged (absent for other sets).
      type: str
      returned: when status is invalid
      sample: "manifest /var/backups/lifeboat/app-db/20261122T031500Z-3f9a0c/manifest.json is corrupted (not valid JSON)"
    kind:
      description: Source kind from the manifest.
      type: str
      sample: sqlite
    started:
      description: UTC start time.
      type: str
      sample: "2026-11-22T03:15:00.120044Z"
    finished:
      description: UTC finish time (null for incomplete sets).
      type: str
      sample: "2026-11-22T03:15:09.532001Z"
    size:
      description: Stored bytes.
      type: int
      sample: 1048576
    raw_size:
      description: Bytes before compression and encryption.
      type: int
      sample: 5947392
    sha256:
      description: sha256 of the stored data object.
      type: str
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    encrypted:
      description: Whether the set is age-encrypted.
      type: bool
      sample: false
    verification:
      description: Checks recorded at backup time.
      type: dict
      sample: {"integrity_check": "ok", "row_counts": {"orders": 120000}}
    location:
      description: Where the set is, per repository.
      type: dict
      sample: {"local": "/var/backups/lifeboat/app-db/20261122T031500Z-3f9a0c"}
    complete_in:
      description: Repositories that hold the set complete.
      type: list
      elements: str
      sample: [local, s3]
latest:
  description:
    - The newest complete set, or null when there is none.
    - While an C(invalid) set may be newer than it, restoring or verifying C(latest) fails and names that set, unless
      I(skip_damaged=true) is given to the restore.
  returned: always
  type: dict
  sample: {"id": "20261122T031500Z-3f9a0c", "status": "complete"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.pipeline.catalog import COMPLETE, INCOMPLETE, INVALID, list_sets
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.naming import validate_job
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, repository_from_params, repository_spec, run_module)


def main():
    spec = repository_spec()
    spec.update(status=dict(type="list", elements="str", choices=[COMPLETE, INCOMPLETE, INVALID]))
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    params = module.params

    def action():
        job = validate_job(params["job"])
        entries = [s.to_dict() for s in list_sets(repository_from_params(params), job)]
        latest = next((e for e in entries if e["status"] == COMPLETE), None)
        for entry in entries:
            if entry["status"] == INVALID:
                module.warn("set %s of job %s is damaged: %s" % (entry["id"], job, entry["error"]))
        if params["status"]:
            entries = [e for e in entries if e["status"] in params["status"]]
        return dict(changed=False, sets=entries, latest=latest)

    run_module(module, action)


if __name__ == "__main__":
    main()
