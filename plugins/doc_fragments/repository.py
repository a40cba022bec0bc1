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
      - At least one of I(dest), I(sftp), I(ftp) and I(s3) is required. With several, one run writes the same set
        to each of them.
    type: path
  sftp:
    description:
      - SFTP server repository (OpenSSH or any SFTP server). Sets are stored at C(<path>/<job>/<set id>/) on the server.
      - The data object is written with pipelined SFTP writes; the manifest is written to a temporary name and renamed
        to C(manifest.json) (C(posix-rename@openssh.com)) once the server has acknowledged all the data.
      - The server's host key must be known, from I(known_hosts_file) or pinned with I(host_key_fingerprint);
        an unknown or changed host key is refused.
      - Credentials come only from files readable by their owner alone (mode C(0600)); a file that group or others
        can access is refused.
    type: dict
    suboptions:
      host:
        description: Host name or IP address of the SFTP server.
        type: str
        required: true
      port:
        description: SSH port of the server.
        type: int
        default: 22
      user:
        description: User to log in as.
        type: str
        required: true
      path:
        description:
          - Directory on the server below which the sets are stored, like C(s3://bucket/prefix).
          - An absolute path, or a path relative to the user's login directory (C(.) for the login directory itself).
          - Missing directories are created with mode C(0700).
        type: str
        required: true
      key_file:
        description:
          - Path of an unencrypted private key (OpenSSH ed25519, ECDSA or RSA) on the managed host, mode C(0600).
          - At least one of I(key_file) and I(password_file) is required; with both, the key is tried first.
        type: path
      password_file:
        description: Path of a file (mode C(0600)) on the managed host holding the password of I(user) on its first line.
        type: path
      known_hosts_file:
        description:
          - OpenSSH C(known_hosts) file holding the server's host key (hashed entries work). Create it with
            C(ssh-keyscan -p PORT HOST) after checking the key out of band.
          - Default is C(~/.ssh/known_hosts) and C(/etc/ssh/ssh_known_hosts) of the user running the module.
          - Mutually exclusive with I(host_key_fingerprint).
        type: path
      host_key_fingerprint:
        description:
          - Pin the server's host key by its OpenSSH SHA256 fingerprint, such as
            C(SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8), as printed by C(ssh-keygen -lf) for the host key.
          - When set, known_hosts files are not consulted. Mutually exclusive with I(known_hosts_file).
        type: str
      timeout:
        description: Seconds to wait for the connection, the login and each network operation.
        type: int
        default: 30
  ftp:
    description:
      - FTP server repository, explicit FTPS (C(AUTH TLS), protected data connections) by default.
        Sets are stored at C(<path>/<job>/<set id>/) on the server.
      - Passive mode. The data object is uploaded through one C(STOR); the manifest is uploaded to a temporary name
        and renamed (C(RNFR)/C(RNTO)) to C(manifest.json) once the server has confirmed the data and its size.
      - Data connections resume the TLS session of the control connection, as vsftpd and ProFTPD require.
      - Servers without C(MLSD) (such as vsftpd) are listed with C(NLST), C(SIZE) and C(MDTM).
    type: dict
    suboptions:
      host:
        description: Host name or IP address of the FTP server. With I(tls_verify), it must match the server certificate.
        type: str
        required: true
      port:
        description: Control port of the server.
        type: int
        default: 21
      user:
        description: User to log in as.
        type: str
        required: true
      path:
        description:
          - Directory on the server below which the sets are stored, like C(s3://bucket/prefix).
          - An absolute path, or a path relative to the user's login directory (C(.) for the login directory itself).
        type: str
        required: true
      password_file:
        description: Path of a file (mode C(0600)) on the managed host holding the password of I(user) on its first line.
        type: path
        required: true
      tls:
        description:
          - Use explicit FTPS (C(AUTH TLS), then C(PROT P) so data connections are encrypted too).
          - Set C(false) only on a trusted network, since the password and the backups would cross it in clear.
        type: bool
        default: true
      tls_verify:
        description: Verify the server certificate and host name (against I(ca_file), else the system CA store).
        type: bool
        default: true
      ca_file:
        description: PEM file of the CA (or the self-signed certificate) that signed the server certificate.
        type: path
      timeout:
        description: Seconds to wait for the connection, the login and each network operation.
        type: int
        default: 30
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
          - Size in bytes of the first multipart upload parts, 5 MiB to 5 GiB. Default 16 MiB.
          - Parts double in size after every 1,000 parts (at most 5 GiB), so an artifact up to S3's 5 TiB object limit
            fits in its 10,000 parts (4.87 TiB from the 5 MiB minimum).
          - Memory use is bounded by (I(max_concurrency) + 1) times the current part size; docs/fault-tolerance.md lists
            the bound at each size.
        type: int
      max_concurrency:
        description: Parts uploaded in parallel, 1 to 64. Default 4.
        type: int
requirements:
  - boto3 on the managed host when I(s3) is used.
  - paramiko on the managed host when I(sftp) is used.
notes:
  - A set is complete only when its C(manifest.json) exists; it is written last. Readers ignore sets without one.
"""
