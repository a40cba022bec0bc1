# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  job:
    description:
      - Name of the backup job. Sets are stored under C(<job>/<set id>/) in each repository.
      - 1 to 128 letters, digits, C(.), C(_) or C(-).
    type: str
    required: true
  dest:
    description:
      - Local directory repository. Sets are stored at C(<dest>/<job>/<set id>/).
      - I(dest) plays the role of C(s3://bucket/prefix), so C(aws s3 sync <dest> s3://bucket/prefix/) mirrors
        it exactly and adding or removing I(s3) never moves local sets.
      - At least one of I(dest) and I(s3) is required. With both, one run writes the same set to both.
    type: path
  s3:
    description:
      - S3 (or an S3-compatible store such as MinIO, R2 or Ceph) repository. Sets are stored at C(s3://<bucket>/<prefix>/<job>/<set id>/).
      - Set it once for every lifeboat module with C(module_defaults) and the action group C(group/lifeboat.backup.lifeboat).
    type: dict
    suboptions:
      bucket:
        description: Bucket name.
        type: str
        required: true
      prefix:
        description: Key prefix below the bucket; leading and trailing slashes are ignored.
        type: str
        default: ''
      endpoint_url:
        description: URL of an S3-compatible endpoint (MinIO, R2, moto). Unset for AWS. Path-style addressing is used when set.
        type: str
      region:
        description: AWS region. Default from the AWS configuration of the host.
        type: str
      storage_class:
        description:
          - Storage class of the data object. Manifests always stay C(STANDARD) so catalogs stay cheap to read.
          - Prefer lifecycle rules (role C(lifeboat.backup.s3_bucket)) for tiering older sets.
        type: str
        choices: [STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER, GLACIER_IR, DEEP_ARCHIVE, REDUCED_REDUNDANCY]
      sse:
        description: Server-side encryption of uploaded objects.
        type: str
        choices: [AES256, 'aws:kms']
      sse_kms_key_id:
        description: KMS key id or ARN, with I(sse=aws:kms).
        type: str
      access_key:
        description: AWS access key id. Default is the boto3 credential chain (environment, profile, instance role).
        type: str
        aliases: [aws_access_key_id]
      secret_key:
        description: AWS secret access key, with I(access_key).
        type: str
        aliases: [aws_secret_access_key]
      session_token:
        description: AWS session token for temporary credentials.
        type: str
        aliases: [aws_session_token]
      multipart_chunk_size:
        description:
          - Size in bytes of each multipart upload part, at least 5 MiB. Default 16 MiB.
          - Memory use is bounded by (I(max_concurrency) + 1) times this size.
        type: int
      max_concurrency:
        description: Parts uploaded in parallel, 1 to 64. Default 4.
        type: int
requirements:
  - boto3 on the managed host when I(s3) is used.
notes:
  - A set is complete only when its C(manifest.json) exists; it is written last. Readers ignore sets without one.
"""
