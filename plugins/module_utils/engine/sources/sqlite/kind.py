"""SQLite: online backup through the backup API (WAL-safe, never a file copy), integrity-checked
restore with an atomic swap that keeps the previous database aside.

This is the entry the kinds registry loads; the backup side is in snapshot.py, the restore in restore.py and the
test restore in verify.py."""

import os

from . import options as schemas
from .put_back import put_back_sqlite
from .restore import restore_sqlite
from .snapshot import SqliteSource

OPTIONS = schemas.OPTIONS  # protocol.Kind: the schemas of its options (options.py)
RESTORE_OPTIONS = schemas.RESTORE_OPTIONS


def source_from_options(options):
    """Kind contract used by the runner: a Source from module option names (path, tmp_dir, verify, busy_timeout)."""
    return SqliteSource(options["path"], tmp_dir=options.get("tmp_dir"), verify=options.get("verify", True),
                        busy_timeout=options.get("busy_timeout", 30.0))


def restore_from_options(repository, options, check_mode=False):
    """Kind contract used by the runner: restore with module option names; returns the module's result dict."""
    return restore_sqlite(repository, options["job"], options["path"], backup=options.get("backup", "latest"),
                          before=options.get("before"),
                          identity_file=(options.get("encryption") or {}).get("age_identity_file"),
                          owner=options.get("owner"), group=options.get("group"), mode=options.get("mode"),
                          keep_previous=options.get("keep_previous", True), check_mode=check_mode)


def put_back_from_options(options, previous, target=None, check_mode=False):
    """Kind contract: put the database a restore kept aside (`previous`) back at `target` (absolute, normalised),
    by default the job's path as restore_from_options resolves it; returns put_back_sqlite's result."""
    if target is None:
        target = os.path.abspath(os.path.expanduser(options["path"]))
    return put_back_sqlite(target, previous, check_mode=check_mode)
