"""Redis engine: RESP encoding/parsing, INFO parsing, BGSAVE waiting, key checks, options."""

import pytest

from engine import redis as redis_engine
from engine.errors import SourceError
from engine.resp import Parser, ProtocolError, RespError, encode_command, keyspace, parse_info


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
    keys = redis_engine.bgsave_and_wait(client, 10, sleep=lambda s: None)
    assert keys == {"db0": {"keys": 5, "expires": 0}}
    assert ("BGSAVE", "SCHEDULE") in client.calls


def test_bgsave_already_in_progress_is_waited_out_and_issued_again():
    busy = RespError("ERR Background save already in progress")
    client = FakeClient(lastsave=[900, 900, 950, 950, 1001], persistence=[("1", "ok"), ("0", "ok"), ("0", "ok")],
                        bgsave=[busy, "Background saving started"])
    redis_engine.bgsave_and_wait(client, 10, sleep=lambda s: None)
    assert [call for call in client.calls if call[0] == "BGSAVE"] == [("BGSAVE", "SCHEDULE")] * 2


def test_bgsave_same_second_waits_for_clock():
    client = FakeClient(lastsave=[1000], persistence=[("0", "ok")], bgsave=["started"], now=1000)
    ticks = []

    def sleep(seconds):
        ticks.append(seconds)
        client.now = 1001
        client.lastsave = [1000, 1002]
    redis_engine.bgsave_and_wait(client, 10, sleep=sleep)
    assert ticks  # did not issue BGSAVE in the same second as the previous save


def test_bgsave_failure_and_timeout_are_reported():
    client = FakeClient(lastsave=[900], persistence=[("0", "ok"), ("1", "ok"), ("0", "err")], bgsave=["started"])
    with pytest.raises(SourceError) as failure:
        redis_engine.bgsave_and_wait(client, 10, sleep=lambda s: None)
    assert "rdb_last_bgsave_status:err" in failure.value.msg
    clock = iter(range(0, 100000, 5))
    client = FakeClient(lastsave=[900], persistence=[("1", "ok")], bgsave=["started"])
    with pytest.raises(SourceError) as failure:
        redis_engine.bgsave_and_wait(client, 30, sleep=lambda s: None, clock=lambda: next(clock))
    assert "bgsave_timeout" in failure.value.msg


def test_bgsave_other_errors_are_clear():
    client = FakeClient(lastsave=[900], persistence=[("0", "ok")], bgsave=[RespError("NOPERM this user has no "
                                                                                     "permissions to run 'bgsave'")])
    with pytest.raises(SourceError) as failure:
        redis_engine.bgsave_and_wait(client, 10, sleep=lambda s: None)
    assert "refused BGSAVE" in failure.value.msg and "ACL SETUSER" in failure.value.msg


def test_compare_keys_allows_expired_ttl_keys_only():
    assert redis_engine.compare_keys({"db0": 10}, {"db0": 2}, True, {"db0": 8}) == (True, [])
    ok, problems = redis_engine.compare_keys({"db0": 10}, {"db0": 2}, True, {"db0": 7})
    assert not ok and "db0 has 7 keys, the backup had 10" in problems[0]
    ok, problems = redis_engine.compare_keys({"db0": 10}, {}, True, {"db0": 10, "db3": 1})
    assert not ok and "db3" in problems[0]
    ok, problems = redis_engine.compare_keys({"db0": 10}, {}, False, {"db0": 11})
    assert ok and problems  # counts moved during the backup: reported, not fatal


def test_options_password_from_environment_never_described(monkeypatch):
    monkeypatch.setenv("REDISCLI_AUTH", "from-env")
    connection = redis_engine.connection_from_options({"redis_port": 7000, "redis_user": "backup"})
    assert connection["password"] == "from-env" and connection["port"] == 7000
    connection = redis_engine.connection_from_options({"redis_password": "given"})
    assert connection["password"] == "given"
    source = redis_engine.source_from_options({"redis_password": "given", "rdb_path": "/var/lib/redis/dump.rdb"})
    assert "given" not in repr(source.describe())
    assert source.describe()["rdb_path"] == "/var/lib/redis/dump.rdb"


def test_default_restart_command_and_validation(tmp_path):
    assert redis_engine.default_restart_command("redis") == ["systemctl", "restart", "redis"]
    assert redis_engine.default_restart_command(None) == ["systemctl", "restart", "redis-server"]
    spec = redis_engine.connection_spec()
    assert spec["redis_password"]["no_log"] is True


def test_rdb_header_check(tmp_path):
    good = tmp_path / "dump.rdb"
    good.write_bytes(b"REDIS0010\xfa...")
    assert redis_engine.check_rdb_header(str(good), "x") == "0010"
    bad = tmp_path / "bad.rdb"
    bad.write_bytes(b"SQLite format 3\x00")
    with pytest.raises(Exception) as failure:
        redis_engine.check_rdb_header(str(bad), "bad.rdb")
    assert "not a Redis RDB file" in failure.value.msg
