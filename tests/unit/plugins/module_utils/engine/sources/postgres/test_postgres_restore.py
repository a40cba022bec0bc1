"""PostgreSQL restore and put-back without a server: refused option combinations, ANALYZE of what was restored,
the put-back swap in one transaction."""

import pytest

from engine.core.errors import ConfigError
from engine.sources.postgres.connection import Connection


def conn(**options):
    return Connection(environ={"PATH": "/usr/bin"}, **options)


def test_restore_option_combinations_are_refused_before_any_work():
    from engine.sources.postgres.restore import PostgresRestore
    with pytest.raises(ConfigError, match="not both"):
        PostgresRestore(None, conn(), "j", "db", clean=True, safe_swap=True)
    with pytest.raises(ConfigError, match="safe_swap replaces the whole database"):
        PostgresRestore(None, conn(), "j", "db", safe_swap=True, tables=["t"])
    with pytest.raises(ConfigError, match="jobs must be 1 or more"):
        PostgresRestore(None, conn(), "j", "db", jobs=0)
    with pytest.raises(ConfigError, match="database is required"):
        PostgresRestore(None, conn(), "j", "")


class RecordingConnection(object):
    """Stands in for Connection.query: records the SQL, or fails like an unreachable server."""

    def __init__(self, failure=None):
        self.sent = []
        self.failure = failure

    def query(self, sql, database=None, doing=None):
        self.sent.append((database, sql))
        if self.failure:
            raise self.failure
        return ""


def test_analyze_covers_what_was_restored_and_a_failure_is_only_a_warning():
    from engine.sources.postgres.connection import PostgresError
    from engine.sources.postgres.queries import ANALYZE_USER_TABLES_SQL
    from engine.sources.postgres.restore import PostgresRestore
    restore = PostgresRestore(None, conn(), "j", "db")
    restore.connection = RecordingConnection()
    result = {}
    assert restore._analyze("db_new", None, result) is True
    assert restore._analyze("db_new", ["public.orders", 'sales.Order "lines"', "public.my.table"], result) is True
    assert restore._analyze("db_new", [], result) is False  # a selection without tables: nothing to analyze
    assert restore.connection.sent == [
        ("db_new", ANALYZE_USER_TABLES_SQL),
        ("db_new", 'ANALYZE "public"."orders", "sales"."Order ""lines""", "public"."my.table"')]
    assert "warnings" not in result
    restore.connection = RecordingConnection(PostgresError("could not connect to PostgreSQL"))
    assert restore._analyze("db_new", None, result) is False
    assert len(result["warnings"]) == 1
    assert "could not connect" in result["warnings"][0] and "run ANALYZE" in result["warnings"][0]


class ScriptedConnection(object):
    """Both databases exist, no other sessions; statements starting with `fail_on` fail."""

    def __init__(self, fail_on=None):
        self.sent = []
        self.fail_on = fail_on

    def query(self, sql, database=None, doing=None):
        from engine.sources.postgres.connection import PostgresError
        self.sent.append(sql)
        if self.fail_on and sql.startswith(self.fail_on):
            raise PostgresError("permission denied to drop database")
        return "0" if sql.startswith("SELECT count(*)") else ""

    def query_json(self, sql, database=None, doing=None):
        return {"live": True, "previous": True}


def test_put_back_swaps_in_one_transaction_and_a_failed_drop_is_only_a_warning():
    from engine.sources.postgres.connection import MAX_IDENTIFIER
    from engine.sources.postgres.swap import put_back, side_name
    connection = ScriptedConnection()
    assert put_back(connection, "app", "app_lbprev_0a0b0c", check_mode=True)["rejected"].startswith("app_lbfailed_")
    assert not any(sql.startswith(("BEGIN", "ALTER", "DROP")) for sql in connection.sent)  # check mode
    connection = ScriptedConnection(fail_on="DROP DATABASE")
    result = put_back(connection, "app", "app_lbprev_0a0b0c")
    swap = [sql for sql in connection.sent if sql.startswith("BEGIN")]
    assert swap == ['BEGIN; ALTER DATABASE "app" RENAME TO "%s"; ALTER DATABASE "app_lbprev_0a0b0c" RENAME TO '
                    '"app"; COMMIT;' % result["rejected"]]
    assert not result["rejected_dropped"] and "drop it by hand" in result["warnings"][0]
    # a name side_name shortened (the database's own name is long) is still recognised
    long_name = "x" * MAX_IDENTIFIER
    assert put_back(ScriptedConnection(), long_name, side_name(long_name, "prev"))["rejected_dropped"]
