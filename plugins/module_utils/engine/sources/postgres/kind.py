"""The PostgreSQL kind's entry point, the module the registry (sources/kinds.py) loads: pg_dump (custom format)
streamed into a set, and pg_restore back. Everything talks to the server through libpq tools run as argument
lists. The parts live beside it: connection.py (reaching the server, argument lists, errors), queries.py (row
counts and other SQL), archive.py (the set's format and table of contents), dump.py (the backup side),
restore.py (the restore side), swap.py (safe_swap and put_back), script.py and load.py (set text that reaches
psql), verify.py (the test restore of backup_verify) and options.py (the options).
"""

from .connection import Connection
from .dump import PostgresSource
from .restore import PostgresRestore

__all__ = ("RESTORE_TARGET", "restore_from_options", "source_from_options")

RESTORE_TARGET = "database"


def source_from_options(options):
    """Kind contract used by the runner: a Source from module option names."""
    return PostgresSource(Connection.from_options(options), options.get("database"),
                          include_globals=options.get("globals", False), verify=options.get("verify", True),
                          role_passwords=options.get("globals_role_passwords", True),
                          lock_wait_timeout=options.get("lock_wait_timeout"))


def restore_from_options(repository, options, check_mode=False):
    """Kind contract used by the runner: restore with module option names; returns the module's result dict."""
    restore = PostgresRestore(
        repository, Connection.from_options(options), options["job"], options.get("database"),
        backup=options.get("backup", "latest"), before=options.get("before"),
        identity_file=(options.get("encryption") or {}).get("age_identity_file"),
        clean=options.get("clean", False), safe_swap=options.get("safe_swap", False), tables=options.get("tables"),
        schemas=options.get("schemas"), jobs=options.get("jobs") or 1, tmp_dir=options.get("tmp_dir"),
        keep_previous=options.get("keep_previous", True),
        terminate_connections=options.get("terminate_connections", False), no_owner=options.get("no_owner", False),
        restore_globals=options.get("restore_globals", False), verify=options.get("verify", True),
        analyze=options.get("analyze", True))
    return restore.run(check_mode=check_mode)


# protocol.Kind: the schemas of its options (options.py: the connection's with the dump's, or with the restore's).
from . import options as schemas  # noqa: E402  pylint: disable=wrong-import-position

OPTIONS = schemas.OPTIONS
RESTORE_OPTIONS = schemas.RESTORE_OPTIONS
