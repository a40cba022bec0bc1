#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: backup_retention
short_description: Remove old backup sets of a job by keep rules (last, hourly, daily, weekly, monthly, yearly, max age)
version_added: 0.1.0
description:
  - Applies a retention policy to the sets of I(job) in the configured repositories (local directory and/or S3),
    with restic/borg semantics.
  - I(keep_last) keeps the N newest complete sets. I(keep_hourly), I(keep_daily), I(keep_weekly), I(keep_monthly) and
    I(keep_yearly) each keep the newest set of each of the N most recent calendar periods that hold a set. Periods are
    UTC calendar periods of the time the set finished; weeks are ISO 8601 weeks (Monday to Sunday).
  - A set selected by any keep rule is kept; a complete set selected by none is removed.
  - I(max_age) is a ceiling. A set that finished more than I(max_age) ago is removed even when a keep rule selected
    it. Without any keep rule, every set younger than I(max_age) is kept.
  - The newest complete set is never removed, whatever the rules say.
  - Sets without a manifest (a failed or still running backup) are removed once nothing was written to them for
    I(incomplete_grace). Sets whose manifest cannot be read are reported and never removed.
  - On S3 the objects of every removed set are deleted with C(DeleteObjects) in batches of 1000, manifests first,
    so a partly removed set never looks complete. Locally the manifest is removed before the directory.
  - In check mode it returns what would be removed and removes nothing.
author:
  - lifeboat.backup maintainers (@lifeboat-backup)
options:
  keep_last:
    description: Keep the N newest complete sets. C(0) turns the rule off.
    type: int
    default: 0
  keep_hourly:
    description: Keep the newest set of each of the N most recent hours (UTC) that have sets.
    type: int
    default: 0
  keep_daily:
    description: Keep the newest set of each of the N most recent days (UTC) that have sets.
    type: int
    default: 0
  keep_weekly:
    description: Keep the newest set of each of the N most recent ISO weeks that have sets.
    type: int
    default: 0
  keep_monthly:
    description: Keep the newest set of each of the N most recent months that have sets.
    type: int
    default: 0
  keep_yearly:
    description: Keep the newest set of each of the N most recent years that have sets.
    type: int
    default: 0
  max_age:
    description:
      - Remove sets that finished longer ago than this, even when a keep rule selected them (the newest set always stays).
      - A number of seconds or a duration such as C(30d), C(12h), C(1d12h), C(2w), C(45m).
    type: str
  incomplete_grace:
    description: Remove sets without a manifest once nothing was written to them for this long (same format as I(max_age)).
    type: str
    default: 24h
extends_documentation_fragment:
  - lifeboat.backup.repository
attributes:
  check_mode:
    support: full
    description: Lists what would be removed; removes nothing.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs where the repositories can be reached.
notes:
  - At least one keep rule or I(max_age) is required; a policy without rules fails rather than removing every set.
  - Removing from S3 needs C(s3:ListBucket) and C(s3:DeleteObject). With bucket versioning the deleted objects stay as
    noncurrent versions until a lifecycle rule expires them (role C(lifeboat.backup.s3_bucket)).
seealso:
  - module: lifeboat.backup.backup_catalog
  - module: lifeboat.backup.backup_verify
"""

EXAMPLES = r"""
- name: Keep 7 daily, 4 weekly and 12 monthly sets, nothing older than 400 days
  lifeboat.backup.backup_retention:
    job: app-db
    s3:
      bucket: acme-backups
      prefix: prod
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 12
    max_age: 400d

- name: See what a policy would remove
  lifeboat.backup.backup_retention:
    job: app-db
    dest: /var/backups/lifeboat
    keep_last: 3
  check_mode: true
  register: plan

- name: Show the sets that would go
  ansible.builtin.debug:
    msg: "{{ plan.removed | map(attribute='id') | list }}"
"""

RETURN = r"""
kept:
  description: Sets kept, newest first, each with the rules that kept it.
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
        - C(complete), C(incomplete) or C(invalid).
        - An C(invalid) (damaged) set is never removed automatically and is named in a warning; it never makes
          retention remove the newest complete set.
      type: str
      sample: complete
    finished:
      description: UTC time the set finished (null for incomplete sets).
      type: str
      sample: "2026-11-22T03:15:09.532001Z"
    size:
      description: Stored bytes.
      type: int
      sample: 1048576
    location:
      description: Where the set is, per repository.
      type: dict
      sample: {"s3": "s3://acme-backups/prod/app-db/20261122T031500Z-3f9a0c/"}
    reasons:
      description: Why it is kept.
      type: list
      elements: str
      sample: ["newest complete set (never removed)", "keep_daily 2026-11-22"]
removed:
  description: Sets removed (in check mode, that would be removed), newest first, with the same keys as I(kept).
  returned: always
  type: list
  elements: dict
  sample: [{"id": "20261001T031500Z-1b2c3d", "status": "complete", "reasons": ["not selected by any keep rule"]}]
freed_bytes:
  description: Stored bytes of the removed sets.
  returned: always
  type: int
  sample: 73400320
policy:
  description: The policy applied, durations in seconds.
  returned: always
  type: dict
  sample: {"keep_daily": 7, "keep_last": 0, "max_age": 34560000, "incomplete_grace": 86400}
now:
  description: The time the policy was evaluated at (UTC).
  returned: always
  type: str
  sample: "2026-11-22T04:00:00.000000Z"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.pipeline.options import RETENTION
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.pipeline.retention import (
    POLICY_KEYS, apply_retention)
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import (
    REQUIRED_ONE_OF, repository_from_params, repository_spec, run_module)


def main():
    spec = repository_spec()
    spec.update(argument_spec(RETENTION))  # the rules, as the engine defines them (pipeline/options.py)
    module = AnsibleModule(argument_spec=spec, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    params = module.params

    def action():
        options = {key: params[key] for key in POLICY_KEYS}
        result = apply_retention(repository_from_params(params), params["job"], options, check_mode=module.check_mode)
        for entry in result["kept"]:
            if entry["status"] == "invalid":  # damaged: kept for inspection, and said so
                module.warn("set %s of job %s is damaged and was left in place: %s"
                            % (entry["id"], params["job"], "; ".join(entry["reasons"])))
        return result

    run_module(module, action)


if __name__ == "__main__":
    main()
