"""Ansible-side glue shared by every lifeboat module: argument specs that match the doc fragments,
conversion of module params into engine objects, and failure reporting.

It imports nothing from Ansible (it is handed the AnsibleModule), so it also stays importable by tests.
"""

import traceback

from .engine.pipeline.backup import plan, run_backup
from .engine.core.errors import LifeboatError
from .engine.core.naming import validate_job
from .engine.core.options import argument_spec
from .engine.pipeline import options as pipeline_options
from .engine.repositories import options as repository_options
from .engine.repositories.repository import Repository

# The option schemas live in the engine (engine/repositories/options.py, engine/pipeline/options.py); these are
# their Ansible argument_specs.
S3_OPTIONS = argument_spec(repository_options.S3)
SFTP_OPTIONS = argument_spec(repository_options.SFTP)
FTP_OPTIONS = argument_spec(repository_options.FTP)


def repository_spec():
    """job, dest, sftp, ftp and s3: how every module names a job's repository (doc fragment
    lifeboat.backup.repository)."""
    return argument_spec(repository_options.REPOSITORY)


def backup_spec():
    """Options of every backup module (doc fragment lifeboat.backup.backup)."""
    spec = repository_spec()
    spec.update(argument_spec(pipeline_options.BACKUP))
    return spec


def restore_spec():
    """Options of every restore module (doc fragment lifeboat.backup.restore)."""
    spec = repository_spec()
    spec.update(argument_spec(pipeline_options.RESTORE))
    return spec


REQUIRED_ONE_OF = [list(repository_options.STORES)]
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
