"""Databases swapped by name. A safe_swap restore loads a side database (side_name) and, once it is verified,
renames the live database away and the side one in, in one transaction (swap_names); put_back undoes that,
giving the kept previous database its name back. Other sessions block a rename: they are ended first only
with terminate_connections.
"""

import contextlib
import re
import secrets

from ...core.errors import ConfigError, LifeboatError, RestoreError
from .connection import MAX_IDENTIFIER, quote_ident, quote_literal


def side_name(database, label):
    """<database>_lb<label>_<6 hex>, the database shortened to fit PostgreSQL's 63 bytes."""
    suffix = "_lb%s_%s" % (label, secrets.token_hex(3))
    base = database.encode("utf-8")[:MAX_IDENTIFIER - len(suffix)].decode("utf-8", "ignore")
    return base + suffix


def other_sessions(connection, database):
    text = connection.query("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                            % quote_literal(database), doing="list sessions")
    return int(text.strip() or 0)


def swap_names(connection, live, live_renamed, incoming, terminate_connections, unchanged, on_swapped=None):
    """ALTER DATABASE live RENAME TO live_renamed and incoming RENAME TO live, in one transaction: all or
    nothing. Other sessions on `live` block a rename: with terminate_connections new connections are refused
    and the sessions ended first, otherwise nothing is renamed. `unchanged` ends the error messages (the state
    the operator finds); `on_swapped()` runs as soon as the names are swapped."""
    sessions = other_sessions(connection, live)
    if sessions and not terminate_connections:
        raise RestoreError("database %s has %d other session(s), so it cannot be renamed: stop the application "
                           "or set terminate_connections: true. %s" % (live, sessions, unchanged))
    if sessions:
        connection.query("ALTER DATABASE %s ALLOW_CONNECTIONS false" % quote_ident(live),
                         doing="block new connections to %s" % live)
    try:
        if sessions:
            connection.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
                             "AND pid <> pg_backend_pid()" % quote_literal(live), doing="end sessions on %s" % live)
        connection.query("BEGIN; ALTER DATABASE %s RENAME TO %s; ALTER DATABASE %s RENAME TO %s; COMMIT;" % (
            quote_ident(live), quote_ident(live_renamed), quote_ident(incoming), quote_ident(live)),
            doing="swap %s with %s" % (live, incoming))
    except LifeboatError as exc:
        if sessions:
            with contextlib.suppress(LifeboatError):
                connection.query("ALTER DATABASE %s ALLOW_CONNECTIONS true" % quote_ident(live))
        raise RestoreError("swapping %s in for %s failed (%s). %s" % (incoming, live, exc.msg, unchanged))
    if on_swapped:
        on_swapped()
    if sessions:
        with contextlib.suppress(LifeboatError):
            connection.query("ALTER DATABASE %s ALLOW_CONNECTIONS true" % quote_ident(live_renamed))


def put_back(connection, database, previous, terminate_connections=False, keep_rejected=False, check_mode=False):
    """Undo a safe_swap restore: `previous` (the database it replaced and kept, <database>_lbprev_<hex>) takes
    the name back in one transaction; the restored database is renamed <database>_lbfailed_<hex> and then
    dropped, unless keep_rejected. Returns {'database', 'previous', 'rejected', 'rejected_dropped', 'changed'}."""
    match = re.match(r"^(.*)_lbprev_[0-9a-f]{6}$", previous or "")
    base = match.group(1) if match else None
    if base is None or not (base == database or (database.startswith(base) and len(previous.encode("utf-8"))
                                                 > MAX_IDENTIFIER - 4)):  # side_name shortened a long name
        raise ConfigError("previous %r is not a database that a safe_swap restore of %s kept (those are named "
                          "%s_lbprev_<hex>, as pg_restore_s3 returns them in `previous`)" % (
                              previous, database, database))
    found = connection.query_json(
        "SELECT json_build_object('live', EXISTS (SELECT 1 FROM pg_database WHERE datname = %s), 'previous', "
        "EXISTS (SELECT 1 FROM pg_database WHERE datname = %s))" % (quote_literal(database), quote_literal(previous)),
        doing="connect")
    if not found["previous"]:
        raise RestoreError("database %s does not exist, so there is nothing to put back (was it put back or "
                           "dropped already?); %s is unchanged" % (previous, database))
    rejected = side_name(database, "failed") if found["live"] else None
    result = {"database": database, "previous": previous, "rejected": rejected, "rejected_dropped": False,
              "changed": True}
    if check_mode:
        return result
    if rejected:
        swap_names(connection, database, rejected, previous, terminate_connections,
                   "Nothing was renamed: %s is still the restored database and %s the one it replaced" % (
                       database, previous))
        if not keep_rejected:
            try:
                connection.query("DROP DATABASE %s" % quote_ident(rejected), doing="drop the rejected restore %s"
                                 % rejected)
                result["rejected_dropped"] = True
            except LifeboatError as exc:  # the put-back itself is done
                result["warnings"] = ["%s is back; dropping the rejected restore %s failed (%s): drop it by hand"
                                      % (database, rejected, exc.msg)]
    else:  # the restored database is gone already: the previous one only takes its name back
        connection.query("ALTER DATABASE %s RENAME TO %s" % (quote_ident(previous), quote_ident(database)),
                         doing="rename %s to %s" % (previous, database))
    return result
