"""Ansible-side glue shared by every lifeboat module: argument specs that match the doc fragments,
conversion of module params into engine objects, and failure reporting.

It imports nothing from Ansible (it is handed the AnsibleModule), so it also stays importable by tests.
"""

import traceback

from .engine.errors import LifeboatError
from .engine.repository import Repository
from .engine.s3_repository import STORAGE_CLASSES

S3_OPTIONS = dict(
    bucket=dict(type="str", required=True),
    prefix=dict(type="str", default=""),
    endpoint_url=dict(type="str"),
    region=dict(type="str"),
    storage_class=dict(type="str", choices=list(STORAGE_CLASSES)),
    sse=dict(type="str", choices=["AES256", "aws:kms"]),
    sse_kms_key_id=dict(type="str"),
    access_key=dict(type="str", no_log=True, aliases=["aws_access_key_id"]),
    secret_key=dict(type="str", no_log=True, aliases=["aws_secret_access_key"]),
    session_token=dict(type="str", no_log=True, aliases=["aws_session_token"]),
    multipart_chunk_size=dict(type="int"),
    max_concurrency=dict(type="int"),
)


def repository_spec():
    """job, dest and s3: how every module names a job's repository (doc fragment lifeboat.backup.repository)."""
    return dict(
        job=dict(type="str", required=True),
        dest=dict(type="path"),
        s3=dict(type="dict", options=S3_OPTIONS),
    )


def backup_spec():
    """Options of every backup module (doc fragment lifeboat.backup.backup)."""
    spec = repository_spec()
    spec.update(
        compression=dict(type="str", default="zstd", choices=["zstd", "gzip", "none"]),
        compression_level=dict(type="int"),
        encryption=dict(type="dict", options=dict(age_recipients=dict(type="list", elements="str", default=[]))),
        verify=dict(type="bool", default=True),
        tags=dict(type="dict", default={}),
    )
    return spec


def restore_spec():
    """Options of every restore module (doc fragment lifeboat.backup.restore)."""
    spec = repository_spec()
    spec.update(
        backup=dict(type="str", default="latest"),
        before=dict(type="str"),
        encryption=dict(type="dict", options=dict(age_identity_file=dict(type="path"))),
    )
    return spec


REQUIRED_ONE_OF = [["dest", "s3"]]
RESTORE_MUTUALLY_EXCLUSIVE = []


def repository_from_params(params):
    s3 = params.get("s3")
    if s3:
        s3 = {key: value for key, value in s3.items() if value not in (None, "")}
    return Repository.from_options(dest=params.get("dest"), s3=s3)


def identity_file(params):
    return (params.get("encryption") or {}).get("age_identity_file")


def check_restore_selection(params):
    if params.get("before") and params.get("backup") not in (None, "", "latest"):
        raise LifeboatError("use either backup (a set id) or before (a time), not both")


def run_module(module, action):
    """Call `action()` -> result dict; exit with it, or fail with the engine's message."""
    try:
        result = action()
    except LifeboatError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="unexpected %s: %s (this is a bug in lifeboat.backup: please report it with the "
                             "traceback)" % (type(exc).__name__, exc), exception=traceback.format_exc())
    module.exit_json(**result)
