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
"""
