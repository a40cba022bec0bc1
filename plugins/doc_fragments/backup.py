# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  compression:
    description:
      - Compression of the stored artifact. zstd runs the C(zstd) command when the host has it (a separate
        process, so compression runs beside the rest of the pipeline), else the Python package C(zstandard).
    type: str
    default: zstd
    choices: [zstd, gzip, none]
  compression_threads:
    description:
      - zstd worker threads. V(0) uses one per CPU core, so compression is rarely the slowest stage; V(1)
        keeps a backup on one core of a busy host. Scheduled jobs of the P(lifeboat.backup.schedule#role) role
        also run under C(nice). Ignored for gzip.
    type: int
    default: 0
  compression_level:
    description: Level, 1 to 19 for zstd (default 3) and 1 to 9 for gzip (default 6).
    type: int
  encryption:
    description: Client-side encryption with age, applied after compression and before upload.
    type: dict
    suboptions:
      age_recipients:
        description:
          - age (C(age1...)) or SSH public keys. The manifest records their fingerprints, never the keys.
          - Needs the C(age) command on the host.
        type: list
        elements: str
        default: []
  verify:
    description: Check the captured data (for example C(PRAGMA integrity_check)) and record the result in the manifest.
    type: bool
    default: true
  tags:
    description: Free-form labels recorded in the manifest.
    type: dict
    default: {}
"""
