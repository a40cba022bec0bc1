"""The PostgreSQL kind's entry point, the module the registry (sources/kinds.py) loads: pg_dump (custom format)
streamed into a set, and pg_restore back. Everything talks to the server through libpq tools run as argument
lists. The parts live beside it: connection.py (reaching the server, argument lists, errors), queries.py (row
counts and other SQL), archive.py (the set's format and table of contents), dump.py (the backup side),
restore.py (the restore side), swap.py (safe_swap and put_back), script.py and load.py (set text that reaches
psql), verify.py (the test restore of backup_verify) and options.py (the options).
"""

import re

from ...core.errors import ConfigError
from .connection import MAX_IDENTIFIER, Connection
from .dump import PostgresSource
from .restore import PostgresRestore
from .swap import put_back

__all__ = ("RESTORE_TARGET", "put_back_from_options", "restore_from_options", "source_from_options")

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


def put_back_from_options(options, previous, target=None, check_mode=False):
    """Kind contract: undo a safe_swap restore of `target` (default: the job's database) with the job's
    connection: `previous`, exactly the <database>_lbprev_<6 hex> the swap named (untrusted: it comes back through
    a log), takes the name back and the rejected restore is dropped (swap.put_back). Returns the runner's result."""
    database = target if target is not None else options.get("database")
    if not database:
        raise ConfigError("the job names no database to put back: set database in the job file or pass --to")
    base = database.encode("utf-8")[:MAX_IDENTIFIER - len("_lbprev_") - 6].decode("utf-8", "ignore")
    if not isinstance(previous, str) or not re.fullmatch(re.escape(base) + "_lbprev_[0-9a-f]{6}", previous):
        raise ConfigError("%r is not a database that a safe_swap restore of %s kept (%s_lbprev_<hex>); nothing was "
                          "changed" % (previous, database, base))
    done = put_back(Connection.from_options(options), database, previous,
                    terminate_connections=options.get("terminate_connections", False), check_mode=check_mode)
    result = {"status": "ok", "restored_to": database, "previous": previous, "rejected": done["rejected"],
              "removed": [done["rejected"]] if done["rejected_dropped"] or (check_mode and done["rejected"]) else [],
              "changed": done["changed"]}
    if done.get("warnings"):
        result["warnings"] = done["warnings"]
    return result


# protocol.Kind: the schemas of its options (options.py: the connection's with the dump's, or with the restore's).
from . import options as schemas  # noqa: E402  pylint: disable=wrong-import-position

OPTIONS = schemas.OPTIONS
RESTORE_OPTIONS = schemas.RESTORE_OPTIONS
