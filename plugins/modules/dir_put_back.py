#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: dir_put_back
short_description: Undo a directory restore, putting back the tree it replaced
version_added: 0.2.0
description:
  - M(lifeboat.backup.dir_restore) keeps the tree it replaced as C(<path>.lifeboat-prev-<time>-<hex>) and returns that
    path as C(previous). When the restored data turns out wrong after the restore (the application fails its health
    check, say), this module puts that tree back at I(path).
  - The rejected tree is renamed aside to C(<path>.lifeboat-failed-<time>-<hex>), the kept tree is renamed back, then
    the rejected tree is removed without following its symlinks. If the kept tree cannot be renamed back, the
    rejected one is renamed back to I(path), so I(path) always holds one of them.
  - When the rejected tree cannot be removed the put-back still succeeds, with a warning naming what to remove by hand.
  - I(previous) must be exactly the name a restore of I(path) makes (C(<path>.lifeboat-prev-<UTC time>[-<hex>])); any
    other name, a kept copy that is not a directory or is a symlink, and a I(path) that is not a directory are refused
    before anything changes.
  - Writes made since the restore are lost, as with any rollback, so stop the applications first (the C(restore.yml)
    runbook does, and calls this module when a health check fails after a directory restore).
  - The same code serves C(lifeboat put-back) of the scheduled runner and the Kubernetes put-back Job.
  - In check mode the names are checked; nothing changes.
author:
  - lifeboat.backup contributors (@lifeboat-backup)
options:
  path:
    description:
      - The directory that was restored, as M(lifeboat.backup.dir_restore) returned it in C(restored_to) (the
        restore's I(path); symlinks in it are resolved as the restore resolves them).
    type: path
    required: true
  previous:
    description:
      - The tree kept aside, as M(lifeboat.backup.dir_restore) returned it in C(previous)
        (C(<path>.lifeboat-prev-<time>-<hex>)). It goes back to I(path).
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: Checks both names and what they are; changes nothing.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs on the host of the directory.
seealso:
  - module: lifeboat.backup.dir_restore
  - module: lifeboat.backup.sqlite_put_back
"""

EXAMPLES = r"""
- name: Restore the uploads from last night
  lifeboat.backup.dir_restore:
    job: uploads
    path: /srv/app/uploads
    before: "2026-11-22T02:00:00Z"
    dest: /var/backups/lifeboat
  register: restored
  become: true

- name: The application rejects them, so put the replaced tree back
  lifeboat.backup.dir_put_back:
    path: "{{ restored.restored_to }}"
    previous: "{{ restored.previous }}"
  become: true
"""

RETURN = r"""
restored_to:
  description: The directory the previous tree went back to.
  returned: success
  type: str
  sample: /srv/app/uploads
previous:
  description: Where that tree was kept until it was put back.
  returned: success
  type: str
  sample: /srv/app/uploads.lifeboat-prev-20261122T091500Z-3f9a0c1d
removed:
  description:
    - Where the rejected tree was moved before it was removed (in check mode, the name it would get); empty when
      I(path) did not exist, or when removing it failed (a warning names it then).
  returned: success
  type: list
  elements: str
  sample: ["/srv/app/uploads.lifeboat-failed-20261122T093000Z-7c1e2a4b"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.options import argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.directory import options as dir_options
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.sources.directory.kind import put_back_from_options
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import run_module


def main():
    module = AnsibleModule(argument_spec=argument_spec(dir_options.PUT_BACK), supports_check_mode=True)
    params = module.params

    def action():
        result = put_back_from_options(params, params["previous"], check_mode=module.check_mode)
        result.pop("status", None)
        for warning in result.pop("warnings", []):
            module.warn(warning)
        return result

    run_module(module, action)


if __name__ == "__main__":
    main()
