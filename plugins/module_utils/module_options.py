"""Ansible-side glue shared by every lifeboat module: argument specs that match the doc fragments,
conversion of module params into engine objects, and failure reporting.

It imports nothing from Ansible (it is handed the AnsibleModule), so it also stays importable by tests.
"""

import traceback

from .engine.pipeline.backup import plan, run_backup
from .engine.core.errors import LifeboatError
from .engine.core.naming import validate_job
from .engine.repositories.repository import Repository
from .engine.repositories.s3 import STORAGE_CLASSES

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

SFTP_OPTIONS = dict(
    host=dict(type="str", required=True),
    port=dict(type="int", default=22),
    user=dict(type="str", required=True),
    path=dict(type="str", required=True),
    key_file=dict(type="path"),
    password_file=dict(type="path", no_log=False),
    known_hosts_file=dict(type="path"),
    host_key_fingerprint=dict(type="str", no_log=False),
    timeout=dict(type="int", default=30),
)

FTP_OPTIONS = dict(
    host=dict(type="str", required=True),
    port=dict(type="int", default=21),
    user=dict(type="str", required=True),
    path=dict(type="str", required=True),
    password_file=dict(type="path", required=True, no_log=False),
    tls=dict(type="bool", default=True),
    tls_verify=dict(type="bool", default=True),
    ca_file=dict(type="path"),
    timeout=dict(type="int", default=30),
)


def repository_spec():
    """job, dest, sftp, ftp and s3: how every module names a job's repository (doc fragment
    lifeboat.backup.repository)."""
    return dict(
        job=dict(type="str", required=True),
        dest=dict(type="path"),
        sftp=dict(type="dict", options=SFTP_OPTIONS),
        ftp=dict(type="dict", options=FTP_OPTIONS),
        s3=dict(type="dict", options=S3_OPTIONS),
    )


def backup_spec():
    """Options of every backup module (doc fragment lifeboat.backup.backup)."""
    spec = repository_spec()
    spec.update(
        compression=dict(type="str", default="zstd", choices=["zstd", "gzip", "none"]),
        compression_level=dict(type="int"),
        compression_threads=dict(type="int", default=0),
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
        skip_damaged=dict(type="bool", default=False),
        encryption=dict(type="dict", options=dict(age_identity_file=dict(type="path"))),
    )
    return spec


REQUIRED_ONE_OF = [["dest", "s3", "sftp", "ftp"]]
RESTORE_MUTUALLY_EXCLUSIVE = []


def _set_values(options):
    return {key: value for key, value in options.items() if value not in (None, "")} if options else None


def repository_from_params(params):
    if "job" in params:  # every module has job: checked before any repository is touched (the engine checks again)
        validate_job(params["job"])
    return Repository.from_options(dest=params.get("dest"), s3=_set_values(params.get("s3")),
                                   sftp=_set_values(params.get("sftp")), ftp=_set_values(params.get("ftp")),
                                   skip_damaged=params.get("skip_damaged", False))


def identity_file(params):
    return (params.get("encryption") or {}).get("age_identity_file")


def check_restore_selection(params):
    if params.get("before") and params.get("backup") not in (None, "", "latest"):
        raise LifeboatError("use either backup (a set id) or before (a time), not both")


def report_skipped(module, result):
    """Restore/verify modules (those with skip_damaged): damaged sets passed over to choose the set become the
    top-level `skipped` list, and a warning each, so a fallback is never silent."""
    backup = result.get("backup") if isinstance(result.get("backup"), dict) else {}
    result["skipped"] = backup.pop("skipped", [])
    for entry in result["skipped"]:
        module.warn("skipped damaged set %s (skip_damaged is true) and used the older set %s instead: %s"
                    % (entry["id"], backup.get("id"), entry["error"]))


def run_module(module, action):
    """Call `action()` -> result dict; exit with it, or fail with the engine's message."""
    try:
        result = action()
        if "skip_damaged" in module.params:
            report_skipped(module, result)
    except LifeboatError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="unexpected %s: %s (this is a bug in lifeboat.backup: please report it with the "
                             "traceback)" % (type(exc).__name__, exc), exception=traceback.format_exc())
    module.exit_json(**result)


def run_backup_module(module, source_from_options):
    """The whole run of a backup module once its arguments are parsed: build the kind's source from the
    module options, report the plan in check mode, else back up; exit or fail the module."""
    params = module.params

    def action():
        source = source_from_options(params)
        repository = repository_from_params(params)
        if module.check_mode:
            return dict(changed=True, plan=plan(source, repository, params["job"], params["compression"],
                                                params["encryption"]))
        backup = run_backup(source, repository, params["job"], compression=params["compression"],
                            compression_level=params["compression_level"], encryption=params["encryption"],
                            tags=params["tags"], threads=params["compression_threads"])
        return dict(changed=True, backup=backup)

    run_module(module, action)
