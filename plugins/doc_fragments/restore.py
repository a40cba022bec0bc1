# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  backup:
    description:
      - Which set to restore, C(latest) (the complete set that finished last) or a set id such as C(20261122T031500Z-3f9a0c).
    type: str
    default: latest
  before:
    description:
      - Restore the newest complete set that finished at or before this ISO 8601 time (for example C(2026-11-22T02:00:00Z)).
        A time without an offset is UTC. Only with I(backup=latest).
    type: str
  skip_damaged:
    description:
      - A damaged set (its C(manifest.json) exists but is not valid JSON, has a field of the wrong type or range, names
        a data object outside the set layout, or describes another set) is an integrity alarm. By default, when a
        damaged set may be newer than the set C(latest) or I(before) would choose, the task fails, names it and
        changes nothing, rather than silently restoring older data.
      - With C(true) such damaged sets are passed over; the result lists each in C(skipped) (id and why) and a
        warning names it.
      - For I(before), a damaged set that started after that time cannot have finished before it and does not
        matter; one that started before it (its finished time cannot be known) does.
      - A set chosen by id (I(backup)) is never skipped, and a set whose data fails the sha256 check always fails.
    type: bool
    default: false
  encryption:
    description: Decryption of age-encrypted sets.
    type: dict
    suboptions:
      age_identity_file:
        description: Path on the host of the age identity (private key) file matching one of the set's recipients.
        type: path
notes:
  - The set is read from the local repository when it holds it, else from S3.
  - The stored data is checked against the manifest's sha256 before anything live is touched.
  - Every manifest field is checked when it is read, and the data object is only ever C(data.<ext>[.zst|.gz][.age])
    inside the set's own directory; a local repository is read without following symbolic links.
"""
