#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, lifeboat.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: litestream_config
short_description: Write a validated Litestream 0.5 configuration file (litestream.yml) idempotently
version_added: 0.1.0
description:
  - Builds C(litestream.yml) for Litestream 0.5.x from structured options, so misspelt or obsolete keys cannot
    creep in (Litestream ignores unknown keys silently, for example 0.3's per-replica C(retention)).
  - Validates the structure (absolute paths, one replica per database, Go durations greater than zero) and,
    when the C(litestream) binary is installed, runs C(litestream databases -config) against a private
    temporary copy before the real file is touched.
  - The file is replaced (atomically, through Ansible's C(atomic_move)) only when the rendered content differs;
    owner, group, mode, SELinux context and file attributes are then set as M(ansible.builtin.copy) sets them,
    and reported as a change (with C(--diff), as the before and after of each attribute). Supports check mode
    and diff mode.
  - Credentials are never written to the YAML. With I(access_key) and I(secret_key) the module writes
    I(env_file) with C(LITESTREAM_ACCESS_KEY_ID) and C(LITESTREAM_SECRET_ACCESS_KEY), for the service's
    C(EnvironmentFile=). Without them Litestream uses the default AWS chain (instance role).
  - I(env_file) is always mode C(0600), never anything wider, not even while it is created; the file options
    (I(owner), I(group), I(mode), SELinux options, I(attributes)) apply to I(path) only. A new I(env_file) belongs
    to the connecting user (systemd reads C(EnvironmentFile=) as root); an existing one keeps its owner, group
    and SELinux context, and a wider mode is corrected to C(0600).
author:
  - lifeboat.backup contributors (@lifeboat-backup)
extends_documentation_fragment:
  - ansible.builtin.files
options:
  path:
    description: The configuration file to write. Its directory must exist.
    type: path
    default: /etc/litestream.yml
  dbs:
    description: The databases to replicate. Litestream 0.5 takes exactly one replica per database.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path of the SQLite database.
        type: path
        required: true
      meta_path:
        description: Where Litestream keeps its local state for this database (default beside the database).
        type: path
      monitor_interval:
        description: How often Litestream checks the WAL for changes (Go duration).
        type: str
      checkpoint_interval:
        description: How often Litestream runs a passive checkpoint (Go duration).
        type: str
      busy_timeout:
        description: SQLite busy timeout Litestream uses (Go duration).
        type: str
      replica:
        description: Where the database is replicated.
        type: dict
        required: true
        suboptions:
          type:
            description: Replica type. Inferred from I(url), or C(s3) when I(bucket) is set.
            type: str
            choices: [s3, file]
          url:
            description: Replica URL (C(s3://bucket/path) or C(file:///dir)) instead of I(bucket)/I(path).
            type: str
          bucket:
            description: S3 bucket (s3 replicas).
            type: str
          path:
            description: Key prefix inside the bucket (s3), or absolute directory (file).
            type: str
          endpoint:
            description: S3-compatible endpoint URL (MinIO, R2, moto). Leave unset for AWS.
            type: str
          region:
            description: S3 region.
            type: str
          force_path_style:
            description: Path-style S3 addressing; needed by most S3-compatible stores.
            type: bool
          skip_verify:
            description: Skip TLS certificate verification of the endpoint (testing only).
            type: bool
            default: false
          sync_interval:
            description: How often new WAL frames are shipped (Go duration, Litestream default C(1s)). The recovery point objective.
            type: str
          sse_kms_key_id:
            description: KMS key for server-side encryption of the uploaded files.
            type: str
          part_size:
            description: Multipart upload part size, for example C(8MiB).
            type: str
          concurrency:
            description: Parallel part uploads.
            type: int
  sync_interval:
    description: Default I(sync_interval) for every replica (Go duration).
    type: str
  snapshot_interval:
    description: How often a full snapshot is written (C(snapshot.interval); Litestream default C(24h)).
    type: str
  retention:
    description:
      - How long snapshots, and with them the point-in-time restore window, are kept (C(snapshot.retention);
        Litestream default C(24h)). Go duration, so 7 days is C(168h).
    type: str
  l0_retention:
    description: How long level-0 LTX files are kept after compaction (C(l0-retention)).
    type: str
  l0_retention_check_interval:
    description: How often level-0 retention is enforced (C(l0-retention-check-interval)).
    type: str
  levels:
    description: Compaction level intervals (C(levels[].interval)), for example C([30s, 5m, 1h]).
    type: list
    elements: str
  validation_interval:
    description: How often replicas are validated against the database (C(validation-interval)).
    type: str
  addr:
    description: Address to serve Prometheus metrics on, for example C(127.0.0.1:9090).
    type: str
  log_level:
    description: Litestream log level.
    type: str
    choices: [DEBUG, INFO, WARN, ERROR]
  owner:
    description:
      - Owner of the configuration file, as in M(ansible.builtin.copy) (default the connecting user for a new
        file; an existing file keeps its owner).
    type: str
  group:
    description: Group of the configuration file; give the service's group so it can read a 0640 file.
    type: str
  mode:
    description:
      - Mode of the configuration file, as in M(ansible.builtin.copy), either an octal string such as C('0640') or a
        symbolic mode such as C(u=rw,g=r,o=). It holds no secrets, but it names buckets and paths.
    type: raw
    default: '0640'
  env_file:
    description:
      - Environment file for the credentials, written with mode 0600 only when I(access_key) and I(secret_key)
        are given. Required when they are. Its directory must exist.
    type: path
  access_key:
    description: S3 access key id, written to I(env_file) as C(LITESTREAM_ACCESS_KEY_ID).
    type: str
    aliases: [aws_access_key_id]
  secret_key:
    description: S3 secret access key, written to I(env_file) as C(LITESTREAM_SECRET_ACCESS_KEY).
    type: str
    aliases: [aws_secret_access_key]
  session_token:
    description: Temporary session token, written to I(env_file) as C(AWS_SESSION_TOKEN).
    type: str
    aliases: [aws_session_token]
  validate:
    description:
      - Check the rendered file with C(litestream databases -config) on a temporary copy when the binary is
        found. The structural checks always run.
    type: bool
    default: true
  binary:
    description: The litestream binary used for validation (a name looked up in C(PATH), or a path).
    type: str
    default: litestream
attributes:
  check_mode:
    support: full
    description: Reports whether the files would change (and the diff) without writing.
  diff_mode:
    support: full
    description:
      - Shows the configuration before and after, and the owner, group and mode of either file before and after
        when they change. The content of the environment file is never shown.
  platform:
    support: full
    platforms: posix
    description: Runs on the host that runs Litestream.
notes:
  - Litestream expands C($VAR) and C(${VAR}) in the file when it reads it; avoid C($) in paths and bucket names.
seealso:
  - name: Litestream configuration reference
    description: The keys this module writes.
    link: https://litestream.io/reference/config/
"""

EXAMPLES = r"""
- name: Replicate the app database to S3 with a 7 day restore window
  lifeboat.backup.litestream_config:
    path: /etc/litestream.yml
    group: litestream
    env_file: /etc/litestream/litestream.env
    access_key: "{{ vault_litestream_access_key }}"
    secret_key: "{{ vault_litestream_secret_key }}"
    snapshot_interval: 6h
    retention: 168h
    dbs:
      - path: /srv/app/data/app.db
        replica:
          bucket: acme-backups
          path: litestream/app
          region: eu-west-1
          sync_interval: 1s
  notify: Restart litestream

- name: MinIO replica plus a local file replica for a second database
  lifeboat.backup.litestream_config:
    dbs:
      - path: /srv/app/data/app.db
        replica:
          bucket: backups
          path: app
          endpoint: https://minio.internal:9000
          force_path_style: true
      - path: /srv/app/data/queue.db
        replica:
          type: file
          path: /var/backups/litestream/queue
"""

RETURN = r"""
path:
  description: The configuration file.
  returned: always
  type: str
  sample: /etc/litestream.yml
config:
  description: The configuration document written (no secrets in it).
  returned: success
  type: dict
  sample:
    snapshot: {"interval": "6h", "retention": "168h"}
    dbs: [{"path": "/srv/app/data/app.db", "replica": {"type": "s3", "bucket": "acme-backups", "path": "litestream/app"}}]
config_changed:
  description: Whether the configuration file content changed (or would change in check mode).
  returned: success
  type: bool
attributes_changed:
  description: Whether owner, group, mode, SELinux context or attributes of the configuration file changed
    (or would change in check mode).
  returned: success
  type: bool
env_file_changed:
  description: Whether the environment file's content or mode changed (or would change in check mode).
  returned: success
  type: bool
validated_with:
  description: C(litestream) when the binary checked the file, else C(structure).
  returned: success
  type: str
  sample: litestream
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lifeboat.backup.plugins.module_utils import litestream_config as engine
from ansible_collections.lifeboat.backup.plugins.module_utils.engine.core.errors import ConfigError
from ansible_collections.lifeboat.backup.plugins.module_utils.module_options import run_module

REPLICA_OPTIONS = dict(
    type=dict(type="str", choices=["s3", "file"]),
    url=dict(type="str"),
    bucket=dict(type="str"),
    path=dict(type="str"),
    endpoint=dict(type="str"),
    region=dict(type="str"),
    force_path_style=dict(type="bool"),
    skip_verify=dict(type="bool", default=False),
    sync_interval=dict(type="str"),
    sse_kms_key_id=dict(type="str"),
    part_size=dict(type="str"),
    concurrency=dict(type="int"),
)

DB_OPTIONS = dict(
    path=dict(type="path", required=True),
    meta_path=dict(type="path"),
    monitor_interval=dict(type="str"),
    checkpoint_interval=dict(type="str"),
    busy_timeout=dict(type="str"),
    replica=dict(type="dict", required=True, options=REPLICA_OPTIONS),
)


def argument_spec():
    return dict(
        path=dict(type="path", default="/etc/litestream.yml"),
        dbs=dict(type="list", elements="dict", required=True, options=DB_OPTIONS),
        sync_interval=dict(type="str"),
        snapshot_interval=dict(type="str"),
        retention=dict(type="str"),
        l0_retention=dict(type="str"),
        l0_retention_check_interval=dict(type="str"),
        levels=dict(type="list", elements="str"),
        validation_interval=dict(type="str"),
        addr=dict(type="str"),
        log_level=dict(type="str", choices=["DEBUG", "INFO", "WARN", "ERROR"]),
        mode=dict(type="raw", default="0640"),  # owner, group, SELinux and attributes: add_file_common_args
        env_file=dict(type="path"),
        access_key=dict(type="str", no_log=True, aliases=["aws_access_key_id"]),
        secret_key=dict(type="str", no_log=True, aliases=["aws_secret_access_key"]),
        session_token=dict(type="str", no_log=True, aliases=["aws_session_token"]),
        validate=dict(type="bool", default=True),
        binary=dict(type="str", default="litestream"),
    )


def write_file(module, path, text, secret=False):
    """Replace `path` with `text` through a temporary file and Ansible's atomic_move (which keeps an existing
    file's owner, group, mode and SELinux context). A secret file is never wider than 0600: its temporary file
    is 0600 and a new one is created under umask 077."""
    handle, temp = tempfile.mkstemp(prefix="litestream-", dir=module.tmpdir)  # 0600, in a private directory
    with os.fdopen(handle, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    umask = os.umask(0o077) if secret else None
    try:
        module.atomic_move(temp, path, unsafe_writes=module.params["unsafe_writes"])
    finally:
        if umask is not None:
            os.umask(umask)


def require_directory(path):
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise ConfigError("directory %s does not exist; create it first (the litestream role does)" % directory)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, add_file_common_args=True)
    params = module.params

    def run(argv, env):
        return module.run_command(argv, environ_update=env, check_rc=False)

    def action():
        document, text = engine.render(params)
        env_text = engine.render_env(params["access_key"], params["secret_key"], params["session_token"])
        env_file = params["env_file"]
        if env_text is not None and not env_file:
            raise ConfigError("access_key/secret_key are given but env_file is not: set env_file (for example "
                              "/etc/litestream/litestream.env); credentials are never written to %s" % params["path"])
        validated_with = "structure"
        if params["validate"]:
            binary = engine.find_binary(params["binary"])
            if binary:
                engine.validate_with_binary(binary, text, run)
                validated_with = "litestream"
        path = params["path"]
        diffs = []
        before = engine.read_text(path)
        config_changed = before != text
        if config_changed:
            require_directory(path)
            diffs.append(dict(before=before or "", after=text, before_header=path, after_header=path))
            if not module.check_mode:
                write_file(module, path, text)
        # owner, group, mode, SELinux context and attributes as ansible.builtin.copy sets them (in check mode
        # only reported; a file that does not exist yet has nothing to compare)
        attributes_changed = False
        if os.path.exists(path):
            attributes_diff = dict(before=dict(path=path), after=dict(path=path))
            file_args = module.load_file_common_arguments(params)
            attributes_changed = module.set_fs_attributes_if_different(file_args, False, attributes_diff)
            if attributes_changed:
                diffs.append(attributes_diff)
        env_file_changed = False
        if env_text is not None:
            # an existing env file is narrowed to 0600 first: its old content is a secret too, and the new one
            # takes over its mode
            if os.path.exists(env_file):
                env_diff = dict(before=dict(path=env_file), after=dict(path=env_file))
                if module.set_mode_if_different(env_file, "0600", False, env_diff):
                    env_file_changed = True
                    diffs.append(env_diff)
            if engine.read_text(env_file) != env_text:
                env_file_changed = True
                require_directory(env_file)
                diffs.append(dict(prepared="%s: content changed (not shown: it holds credentials)" % env_file))
                if not module.check_mode:
                    write_file(module, env_file, env_text, secret=True)
        result = dict(
            changed=config_changed or attributes_changed or env_file_changed,
            path=path,
            config=document,
            config_changed=config_changed,
            attributes_changed=attributes_changed,
            env_file_changed=env_file_changed,
            validated_with=validated_with,
        )
        if module._diff and diffs:
            result["diff"] = diffs
        return result

    run_module(module, action)


if __name__ == "__main__":
    main()
