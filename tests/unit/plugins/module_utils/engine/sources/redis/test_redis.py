"""Redis engine: RESP encoding/parsing, INFO parsing, BGSAVE waiting, key checks, options."""

import os

import pytest

from engine.sources.redis import backup as redis_backup
from engine.sources.redis import connection as redis_connection
from engine.sources.redis import keys as redis_keys
from engine.sources.redis import kind as redis_kind
from engine.sources.redis import rdb as redis_rdb
from engine.sources.redis import restore as redis_restore
from engine.core.errors import IntegrityError, RestoreError, SourceError
from engine.sources.redis.resp import Parser, ProtocolError, RespError, encode_command, keyspace, parse_info


def parse_all(data, step=None):
    parser = Parser()
    replies = []
    chunks = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        parser.feed(chunk)
        while True:
            reply = parser.gets()
            if reply is Parser.NOTHING:
                break
            replies.append(reply)
    return replies


def test_encode_command():
    assert encode_command("SET", "k", b"v\r\n", 12) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$2\r\n12\r\n"
    assert encode_command("AUTH", "pässword") == b"*2\r\n$4\r\nAUTH\r\n$9\r\np\xc3\xa4ssword\r\n"
    with pytest.raises(ValueError):
        encode_command()
    with pytest.raises(TypeError):
        encode_command("SET", None)


@pytest.mark.parametrize("step", [None, 1, 3])
def test_parser_types_and_partial_input(step):
    data = (b"+OK\r\n-ERR Background save already in progress\r\n:1795416408\r\n$5\r\nhello\r\n$-1\r\n"
            b"*2\r\n$3\r\ndir\r\n$4\r\n/tmp\r\n*-1\r\n$0\r\n\r\n*2\r\n*1\r\n:1\r\n+x\r\n")
    replies = parse_all(data, step)
    assert replies[0] == "OK"
    assert isinstance(replies[1], RespError) and "already in progress" in str(replies[1])
    assert replies[2:] == [1795416408, b"hello", None, [b"dir", b"/tmp"], None, b"", [[1], "x"]]


def test_parser_resp3_map_and_binary_bulk():
    assert parse_all(b"%1\r\n+dir\r\n$4\r\n/var\r\n") == [{"dir": b"/var"}]
    assert parse_all(b"$4\r\n\r\n\x00\xff\r\n") == [b"\r\n\x00\xff"]


def test_parser_rejects_non_redis():
    with pytest.raises(ProtocolError):
        parse_all(b"HTTP/1.1 400 Bad Request\r\n")


def test_parse_info_and_keyspace():
    text = ("# Persistence\r\nloading:0\r\nrdb_bgsave_in_progress:1\r\n\r\n# Keyspace\r\n"
            "db0:keys=100003,expires=0,avg_ttl=0\r\ndb1:keys=2,expires=1,avg_ttl=99999\r\n")
    info = parse_info(text.encode())
    assert info["rdb_bgsave_in_progress"] == "1"
    assert keyspace(info) == {"db0": {"keys": 100003, "expires": 0}, "db1": {"keys": 2, "expires": 1}}


class FakeClient(object):
    """Scripted server: LASTSAVE values, INFO persistence states and BGSAVE replies in order."""
    where = "fake:6379"

    def __init__(self, lastsave, persistence, bgsave, now=1000):
        self.lastsave = list(lastsave)
        self.persistence = list(persistence)
        self.bgsave = list(bgsave)
        self.now = now
        self.calls = []

    def execute(self, *args):
        self.calls.append(args)
        if args[0] == "LASTSAVE":
            return self.lastsave.pop(0) if len(self.lastsave) > 1 else self.lastsave[0]
        if args[0] == "TIME":
            return [str(self.now).encode(), b"0"]
        if args[0] == "BGSAVE":
            reply = self.bgsave.pop(0)
            if isinstance(reply, RespError):
                raise reply
            return reply
        raise AssertionError(args)

    def info(self, section):
        if section == "keyspace":
            return {"db0": {"keys": 5, "expires": 0}}
        state = self.persistence.pop(0) if len(self.persistence) > 1 else self.persistence[0]
        return {"rdb_bgsave_in_progress": state[0], "rdb_last_bgsave_status": state[1]}


def test_bgsave_waits_for_lastsave_to_move():
    client = FakeClient(lastsave=[900, 900, 900, 1001], persistence=[("0", "ok"), ("1", "ok"), ("1", "ok"),
                                                                     ("0", "ok")], bgsave=["Background saving started"])
    keys = redis_backup.bgsave_and_wait(client, 10, sleep=lambda s: None)
    assert keys == {"db0": {"keys": 5, "expires": 0}}
    assert ("BGSAVE", "SCHEDULE") in client.calls


def test_bgsave_already_in_progress_is_waited_out_and_issued_again():
    busy = RespError("ERR Background save already in progress")
    client = FakeClient(lastsave=[900, 900, 950, 950, 1001], persistence=[("1", "ok"), ("0", "ok"), ("0", "ok")],
                        bgsave=[busy, "Background saving started"])
    redis_backup.bgsave_and_wait(client, 10, sleep=lambda s: None)
    assert [call for call in client.calls if call[0] == "BGSAVE"] == [("BGSAVE", "SCHEDULE")] * 2


def test_bgsave_same_second_waits_for_clock():
    client = FakeClient(lastsave=[1000], persistence=[("0", "ok")], bgsave=["started"], now=1000)
    ticks = []

    def sleep(seconds):
        ticks.append(seconds)
        client.now = 1001
        client.lastsave = [1000, 1002]
    redis_backup.bgsave_and_wait(client, 10, sleep=sleep)
    assert ticks  # did not issue BGSAVE in the same second as the previous save


def test_bgsave_failure_and_timeout_are_reported():
    client = FakeClient(lastsave=[900], persistence=[("0", "ok"), ("1", "ok"), ("0", "err")], bgsave=["started"])
    with pytest.raises(SourceError) as failure:
        redis_backup.bgsave_and_wait(client, 10, sleep=lambda s: None)
    assert "rdb_last_bgsave_status:err" in failure.value.msg
    clock = iter(range(0, 100000, 5))
    client = FakeClient(lastsave=[900], persistence=[("1", "ok")], bgsave=["started"])
    with pytest.raises(SourceError) as failure:
        redis_backup.bgsave_and_wait(client, 30, sleep=lambda s: None, clock=lambda: next(clock))
    assert "bgsave_timeout" in failure.value.msg


def test_bgsave_other_errors_are_clear():
    client = FakeClient(lastsave=[900], persistence=[("0", "ok")], bgsave=[RespError("NOPERM this user has no "
                                                                                     "permissions to run 'bgsave'")])
    with pytest.raises(SourceError) as failure:
        redis_backup.bgsave_and_wait(client, 10, sleep=lambda s: None)
    assert "refused BGSAVE" in failure.value.msg and "ACL SETUSER" in failure.value.msg


def test_compare_keys_allows_expired_ttl_keys_only():
    assert redis_keys.compare_keys({"db0": 10}, {"db0": 2}, 0, {"db0": 8}) == (True, [])
    ok, problems = redis_keys.compare_keys({"db0": 10}, {"db0": 2}, 0, {"db0": 7})
    assert not ok and "db0 has 7 keys, the backup had 10" in problems[0]
    ok, problems = redis_keys.compare_keys({"db0": 10}, {}, 0, {"db0": 10, "db3": 1})
    assert not ok and "db3" in problems[0]


def test_compare_keys_tolerance_is_what_the_backup_recorded():
    # writes counted during the backup explain a difference up to the tolerance either way (twice below, as
    # the TTL count may be off by as much), never more
    assert redis_keys.compare_keys({"db0": 100}, {}, 5, {"db0": 105})[0]
    assert redis_keys.compare_keys({"db0": 100}, {"db0": 3}, 5, {"db0": 87})[0]
    ok, problems = redis_keys.compare_keys({"db0": 100}, {}, 5, {"db0": 106})
    assert not ok and problems == ["db0 has 106 keys, the backup had 100 (allowed 90 to 105: 5 changes during the "
                                   "backup)"]
    ok, problems = redis_keys.compare_keys({"db0": 100}, {"db0": 3}, 5, {"db0": 86})
    assert not ok and "allowed 87 to 105: 3 with a TTL, 5 changes during the backup" in problems[0]


def test_compare_keys_no_longer_waives_a_mismatch_for_an_unstable_backup():
    """Issue 16 item 4: a set recording 102,110 keys restored to an empty server was a warning, not a failure."""
    ok, problems = redis_keys.compare_keys({"db0": 102110}, {}, 0, {})
    assert not ok and "db0 has 0 keys, the backup had 102110" in " ".join(problems)
    # a manifest may claim any tolerance: an empty server for a set with keys without a TTL still fails
    ok, problems = redis_keys.compare_keys({"db0": 102110}, {}, 10 ** 9, {})
    assert not ok and problems == ["the restored server holds no keys at all, the backup had 102110 without a TTL"]
    # keys that all had a TTL may all have expired since the backup
    assert redis_keys.compare_keys({"db0": 40}, {"db0": 40}, 0, {}) == (True, [])


def manifest_with(verification):
    return {"id": "20261122T031500Z-3f9a", "verification": verification}


def test_key_expectation_reads_and_checks_the_manifest():
    assert redis_keys.key_expectation(manifest_with({"rdb_check": "ok"})) is None
    # sets of lifeboat 0.1.0 recorded no tolerance (and keys_stable, which no longer waives anything)
    assert redis_keys.key_expectation(manifest_with({"keys": {"db0": 5}, "keys_stable": False})) == (
        {"db0": 5}, {}, 0)
    assert redis_keys.key_expectation(manifest_with({"keys": {"db0": 5, "db15": 1}, "expires": {"db0": 2},
                                                     "keys_tolerance": 7})) == ({"db0": 5, "db15": 1}, {"db0": 2}, 7)
    for bad in ({"keys": {"db0": "5"}}, {"keys": {"db0": -1}}, {"keys": {"../x": 1}}, {"keys": [1]},
                {"keys": {"db0": True}}, {"keys": {"db0": 5}, "expires": {"db0": 1.5}},
                {"keys": {"db0": 5}, "keys_tolerance": -3}, {"keys": {"db0": 5}, "keys_tolerance": "lots"}):
        with pytest.raises(IntegrityError) as failure:
            redis_keys.key_expectation(manifest_with(bad))
        assert "is corrupted" in failure.value.msg and "nothing was changed" in failure.value.msg


def test_key_tolerance_counts_changes_since_the_snapshot_and_churn():
    info = {"rdb_changes_since_last_save": "12", "expired_keys": "30", "evicted_keys": "5"}
    assert redis_keys.key_churn(info) == 35
    assert redis_keys.key_tolerance(info, churn_before=31) == 12 + 4
    assert redis_keys.key_tolerance({"rdb_changes_since_last_save": "0"}, churn_before=0) == 0


class CountingClient(object):
    """INFO replies in order, to tie the opened file to the counters."""
    where = "fake:6379"

    def __init__(self, replies):
        self.replies = list(replies)

    def info(self, section=None):
        return self.replies.pop(0)


class Handle(object):
    closed = False

    def close(self):
        self.closed = True


def test_open_latest_save_reads_counts_of_the_file_it_opened():
    first, second = Handle(), Handle()
    handles = [first, second]
    saves = [{"rdb_saves": "4", "rdb_last_save_time": "100"}, {"rdb_saves": "5", "rdb_last_save_time": "101"},
             {"rdb_saves": "5", "rdb_last_save_time": "101"}, {"rdb_saves": "5", "rdb_last_save_time": "101", "x": 1}]
    handle, info = redis_backup.open_latest_save(CountingClient(saves), lambda: handles.pop(0))
    assert handle is second and first.closed and info["x"] == 1  # another save completed: read both again
    moving = [{"rdb_saves": str(n // 2 + n % 2)} for n in range(8)]
    with pytest.raises(SourceError) as failure:
        redis_backup.open_latest_save(CountingClient(moving), Handle, attempts=4)
    assert "completed another save" in failure.value.msg


class ConfigServer(object):
    """_Server stand-in: CONFIG GET/SET on a dict."""
    where = "fake:6379"

    def __init__(self, config):
        self.config = dict(config)

    def connect(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def config_get(self, name):
        return self.config.get(name)

    def execute(self, *args):
        assert args[:2] == ("CONFIG", "SET")
        self.config[args[2]] = args[3]
        return "OK"


def test_quiet_shutdown_turns_every_saving_shutdown_off_and_back():
    server = ConfigServer({"save": "3600 1 300 100", "shutdown-on-sigterm": "save now",
                           "shutdown-on-sigint": "default"})
    replaced = {}
    redis_restore._quiet_shutdown(server, replaced)
    assert server.config == {"save": "", "shutdown-on-sigterm": "nosave now", "shutdown-on-sigint": "default"}
    assert replaced == {"save": "3600 1 300 100", "shutdown-on-sigterm": "save now"}
    redis_restore._restore_config(server, replaced)
    assert server.config["save"] == "3600 1 300 100" and server.config["shutdown-on-sigterm"] == "save now"
    old = ConfigServer({"save": "900 1"})  # Redis 6: no shutdown-on-sigterm
    redis_restore._quiet_shutdown(old, {})
    assert old.config == {"save": ""}


class RunIdServer(redis_restore._Server):
    """_Server whose connect answers INFO with a fixed run_id, or is refused (run_id None)."""

    def __init__(self, run_id):
        super(RunIdServer, self).__init__({"host": "127.0.0.1", "port": 6379}, 0.3)
        self.fixed = run_id

    def connect(self):
        if self.fixed is None:
            raise SourceError("connection refused", reason="connect")
        server = ConfigServer({})
        server.info = lambda section: {"run_id": self.fixed, "loading": "0"}
        return server


def test_wait_ready_tells_a_server_never_restarted_from_one_not_back():
    """The server from before still answering (same run_id) never loaded the placed file: not_restarted, so the
    restore puts the file back without a second restart; a server that does not answer may be anywhere."""
    with pytest.raises(RestoreError) as same:
        RunIdServer("a" * 40).wait_ready("a" * 40)
    assert same.value.details["not_restarted"] is True
    assert "restart_command did not restart it" in same.value.msg and "REDISCLI_AUTH" in same.value.msg
    with pytest.raises(RestoreError) as down:
        RunIdServer(None).wait_ready("a" * 40)
    assert down.value.details["not_restarted"] is False and "connection refused" in down.value.msg


def test_saved_over_tells_a_shutdown_save_from_a_later_one(tmp_path):
    target = tmp_path / "dump.rdb"
    target.write_bytes(b"REDIS0010")
    placed = os.lstat(str(target))
    assert not redis_restore._saved_over(str(target), placed, {"rdb_saves": "0"})
    (tmp_path / "temp-1.rdb").write_bytes(b"REDIS0010")
    os.replace(str(tmp_path / "temp-1.rdb"), str(target))  # how Redis saves: a new file renamed over
    assert redis_restore._saved_over(str(target), placed, {"rdb_saves": "0"})
    assert not redis_restore._saved_over(str(target), placed, {"rdb_saves": "1"})  # the new server saved itself
    assert not redis_restore._saved_over(str(target), placed, {})  # Redis 6 cannot say


def test_staged_attributes_never_follow_a_symlink_at_the_target(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"x")
    os.chmod(str(secret), 0o604)
    target = tmp_path / "dump.rdb"
    os.symlink(str(secret), str(target))
    staged = tmp_path / "staged"
    staged.write_bytes(b"REDIS0010")
    fd = os.open(str(staged), os.O_RDONLY)
    try:
        redis_restore._apply_attributes_fd(fd, str(staged), str(target), str(tmp_path), None, None, None)
    finally:
        os.close(fd)
    # the link's target lent nothing: the directory's owner and 0640, as for a missing file
    assert oct(os.stat(str(staged)).st_mode & 0o7777) == oct(0o640)
    assert oct(os.stat(str(secret)).st_mode & 0o7777) == oct(0o604)


def test_options_password_from_environment_never_described(monkeypatch):
    monkeypatch.setenv("REDISCLI_AUTH", "from-env")
    connection = redis_connection.connection_from_options({"redis_port": 7000, "redis_user": "backup"})
    assert connection["password"] == "from-env" and connection["port"] == 7000
    connection = redis_connection.connection_from_options({"redis_password": "given"})
    assert connection["password"] == "given"
    source = redis_kind.source_from_options({"redis_password": "given", "rdb_path": "/var/lib/redis/dump.rdb"})
    assert "given" not in repr(source.describe())
    assert source.describe()["rdb_path"] == "/var/lib/redis/dump.rdb"


def test_default_restart_command_and_validation(tmp_path):
    assert redis_restore.default_restart_command("redis") == ["systemctl", "restart", "redis"]
    assert redis_restore.default_restart_command(None) == ["systemctl", "restart", "redis-server"]
    spec = redis_connection.connection_spec()
    assert spec["redis_password"]["no_log"] is True


def test_rdb_header_check(tmp_path):
    good = tmp_path / "dump.rdb"
    good.write_bytes(b"REDIS0010\xfa...")
    assert redis_rdb.check_rdb_header(str(good), "x") == "0010"
    bad = tmp_path / "bad.rdb"
    bad.write_bytes(b"SQLite format 3\x00")
    with pytest.raises(Exception) as failure:
        redis_rdb.check_rdb_header(str(bad), "bad.rdb")
    assert "not a Redis RDB file" in failure.value.msg


def rdb_string(data):
    return bytes([len(data)]) + data


def rdb_preamble():
    """AUX fields in every string encoding, then module AUX data of every value type."""
    return (b"REDIS0010"
            + b"\xfa" + rdb_string(b"redis-ver") + rdb_string(b"7.0.15")
            + b"\xfa" + rdb_string(b"ctime") + b"\xc2" + b"\x01\x02\x03\x04"  # 32-bit integer
            + b"\xfa" + rdb_string(b"z") + b"\xc3\x02\x05" + b"\x00\x00"  # LZF: 2 bytes for 5
            + b"\xfa" + rdb_string(b"long") + b"\x41\x00" + b"x" * 256  # 14-bit length
            + b"\xf7" + b"\x81" + b"\x00" * 8 + b"\x02\x02"  # module id, when
            + b"\x02\x05" + b"\x05" + rdb_string(b"abc") + b"\x04" + b"\x00" * 8 + b"\x03" + b"\x00" * 4 + b"\x00")


def test_rdb_functions_are_found_behind_aux_and_module_data(tmp_path):
    from engine.sources.redis.rdb import RdbFormatError, has_functions
    path = tmp_path / "dump.rdb"
    path.write_bytes(rdb_preamble() + b"\xf5" + rdb_string(b"#!lua name=x\nredis.log(...)"))
    assert has_functions(str(path)) is True
    path.write_bytes(rdb_preamble() + b"\xfe\x00\xfb\x01\x00\x00" + rdb_string(b"k") + rdb_string(b"v") + b"\xff")
    assert has_functions(str(path)) is False
    path.write_bytes(b"REDIS0010\xff")
    assert has_functions(str(path)) is False
    for damaged in (rdb_preamble()[:40], b"REDIS0010\xfa\x80\xff\xff\xff\xff", b"SQLite format 3\x00"):
        path.write_bytes(damaged)
        with pytest.raises(RdbFormatError):
            has_functions(str(path))
