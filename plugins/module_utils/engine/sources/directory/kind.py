"""Directories (uploads, ChromaDB stores): a streamed POSIX tar (pax) of a tree with modes, owners, mtimes
and symlinks; SQLite databases inside are captured through the SQLite backup API (their -wal/-shm/-journal
are skipped) and written after every other file. Restore extracts into a new sibling directory, verifies
it against the manifest, then swaps it into place keeping the previous tree aside.

This is the entry the kinds registry loads; the tar format is in archive.py, the backup side in snapshot.py, the
hardened extractor in extract.py, the restore in restore.py and the test restore in verify.py."""

import os

from . import options as schemas
from .put_back import put_back_directory
from .restore import restore_directory
from .snapshot import DirectorySource

OPTIONS = schemas.OPTIONS  # protocol.Kind: the schemas of its options (options.py)
RESTORE_OPTIONS = schemas.RESTORE_OPTIONS


def source_from_options(options):
    """Kind contract: a Source from module option names (path, exclude, sqlite, tmp_dir, verify, busy_timeout)."""
    return DirectorySource(options["path"], exclude=options.get("exclude"), sqlite=options.get("sqlite", True),
                           tmp_dir=options.get("tmp_dir"), verify=options.get("verify", True),
                           busy_timeout=options.get("busy_timeout", 30.0))


def restore_from_options(repository, options, check_mode=False):
    """Kind contract: restore with module option names; returns the module's result dict."""
    return restore_directory(repository, options["job"], options["path"], backup=options.get("backup", "latest"),
                             before=options.get("before"),
                             identity_file=(options.get("encryption") or {}).get("age_identity_file"),
                             keep_previous=options.get("keep_previous", True),
                             numeric_owner=options.get("numeric_owner", False),
                             keep_setuid=options.get("keep_setuid", False), tmp_dir=options.get("tmp_dir"),
                             check_mode=check_mode)


def put_back_from_options(options, previous, target=None, check_mode=False):
    """Kind contract: put the tree a restore kept aside (`previous`) back at `target` (absolute, normalised), by
    default the job's path as restore_from_options resolves it; returns put_back_directory's result."""
    if target is None:
        target = os.path.realpath(os.path.abspath(os.path.expanduser(options["path"])))
    return put_back_directory(target, previous, check_mode=check_mode)
