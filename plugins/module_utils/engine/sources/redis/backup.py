"""The backup side of Redis: RedisSource starts a background save (BGSAVE, waiting for LASTSAVE to advance past
this call, so the snapshot is never older than the backup), opens the RDB file the save wrote and streams that
open file, which stays one consistent snapshot even when a later save replaces the path. The key counts read in the
same INFO reply as the save's marker, and the tolerance the writes during the backup allow, go to the manifest;
redis-check-rdb checks the file first when installed. Talks RESP over a socket (resp.py): no redis-py, no
redis-cli."""

import contextlib
import os
import shutil
import subprocess
import time

from ...core.errors import ConfigError, IntegrityError, SourceError
from ..protocol import Source
from .connection import command_error, describe_connection, locate_rdb
from .keys import key_churn, key_tolerance
from .rdb import check_rdb_header
from .resp import ProtocolError, RedisClient, RespError, keyspace


def bgsave_and_wait(client, timeout, sleep=time.sleep, clock=time.monotonic):
    """Start a background save and return once a save started after this call has finished.

    LASTSAVE has one-second resolution, so when the previous save happened in the current second we wait
    for the clock to move first. "Background save already in progress" (someone else's) is waited out and
    BGSAVE is issued again, so the snapshot is never older than this call. Returns the keyspace read right
    before the save started."""
    deadline = clock() + timeout

    def expired(doing):
        if clock() > deadline:
            raise SourceError("Redis at %s: %s took longer than bgsave_timeout (%s s); raise bgsave_timeout or "
                              "check the server log (disk full? fork failing for lack of memory?)"
                              % (client.where, doing, timeout))

    delay = 0.05
    while True:
        before = client.execute("LASTSAVE")
        server_time = int(client.execute("TIME")[0])
        if before >= server_time:
            expired("waiting for the clock to pass the previous save")
            sleep(0.2)
            continue
        persistence = client.info("persistence")
        status_before = persistence.get("rdb_last_bgsave_status", "ok")
        keys = keyspace(client.info("keyspace"))
        try:
            try:
                client.execute("BGSAVE", "SCHEDULE")
            except RespError as exc:
                if "syntax" not in str(exc).lower() and "unknown" not in str(exc).lower():
                    raise
                client.execute("BGSAVE")  # servers older than 3.2.2 have no SCHEDULE
            break
        except RespError as exc:
            if "already in progress" not in str(exc):
                raise command_error(client, "BGSAVE", exc)
            expired("waiting for the background save already in progress")
            sleep(delay)
            delay = min(delay * 2, 1.0)
    seen_running = False
    delay = 0.05
    while True:
        last = client.execute("LASTSAVE")
        persistence = client.info("persistence")
        running = persistence.get("rdb_bgsave_in_progress") == "1"
        seen_running = seen_running or running
        if last > before and not running:
            return keys
        status = persistence.get("rdb_last_bgsave_status", "ok")
        if not running and status == "err" and (seen_running or status_before == "ok"):
            raise SourceError("BGSAVE on Redis at %s failed (rdb_last_bgsave_status:err); see the Redis log: "
                              "usually no space or no permission in its dir, or fork failed for lack of memory "
                              "(vm.overcommit_memory=1)" % client.where)
        expired("the background save")
        sleep(delay)
        delay = min(delay * 2, 1.0)


class RedisSource(Source):
    kind = "redis"
    extension = "rdb"

    def __init__(self, connection, rdb_path=None, bgsave_timeout=3600, verify=True):
        self.connection = connection
        self.rdb_path = rdb_path
        self.bgsave_timeout = bgsave_timeout
        self.verify = verify
        self._rdb = None
        self._version = None
        self._verification = {}

    def _connect(self):
        client = RedisClient(**self.connection)
        try:
            client.execute("PING")
        except RespError as exc:
            client.close()
            raise SourceError("Redis at %s refused PING: %s; check redis_user/redis_password" % (client.where, exc))
        except ProtocolError as exc:
            client.close()
            raise SourceError("%s; is redis_port a Redis server (and redis_tls right)?" % exc)
        return client

    def check(self):
        if self.bgsave_timeout is not None and self.bgsave_timeout <= 0:
            raise ConfigError("bgsave_timeout must be a positive number of seconds")
        with self._connect() as client:
            try:
                self._version = client.info("server").get("redis_version")
            except RespError as exc:
                raise command_error(client, "INFO", exc)
            self._rdb = locate_rdb(client, self.rdb_path)
        directory = os.path.dirname(self._rdb)
        if not os.path.isdir(directory):
            raise SourceError("the RDB directory %s of Redis at %s does not exist on this host: run the task on "
                              "the Redis host (delegate_to) or set rdb_path" % (directory, client.where))
        if os.path.exists(self._rdb) and not os.access(self._rdb, os.R_OK):
            raise SourceError("cannot read %s: run as root or the redis user (become: true)" % self._rdb)

    def describe(self):
        description = describe_connection(self.connection)
        description["rdb_path"] = self._rdb or self.rdb_path
        if self._version:
            description["redis_version"] = self._version
        return description

    def tools(self):
        return {"redis": self._version} if self._version else {}

    def verification(self):
        return dict(self._verification)

    def _check_file(self, handle):
        """redis-check-rdb on the open snapshot (through /dev/fd, so a newer save cannot swap it)."""
        checker = shutil.which("redis-check-rdb")
        if not checker:
            return "skipped: redis-check-rdb is not installed"
        fd = handle.fileno()
        try:
            proc = subprocess.run([checker, "/dev/fd/%d" % fd], pass_fds=(fd,), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=self.bgsave_timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise SourceError("redis-check-rdb on %s took longer than bgsave_timeout; set verify: false to skip "
                              "the check" % self._rdb)
        finally:
            handle.seek(0)
        if proc.returncode != 0:
            tail = proc.stdout.decode("utf-8", "replace").strip()[-1000:]
            raise SourceError("the RDB file %s written by Redis fails redis-check-rdb (%s); the backup was not "
                              "written. Check the Redis host's disk and memory, or set verify: false to store it "
                              "anyway" % (self._rdb, tail))
        return "ok"

    def _open_rdb(self):
        try:
            return open(self._rdb, "rb")
        except FileNotFoundError:
            raise SourceError("Redis reported a finished save but %s does not exist: set rdb_path to the RDB file "
                              "of this server (is the task running on the Redis host?)" % self._rdb)
        except OSError as exc:
            raise SourceError("cannot read %s: %s; run as root or the redis user (become: true)"
                              % (self._rdb, exc.strerror))

    @contextlib.contextmanager
    def open(self):
        if self._rdb is None:
            self.check()
        with self._connect() as client:
            try:
                churn_before = key_churn(client.info("stats"))
                keys_before = bgsave_and_wait(client, self.bgsave_timeout)
                handle, info = open_latest_save(client, self._open_rdb)
            except ProtocolError as exc:
                raise SourceError("%s during BGSAVE" % exc)
        # Redis writes temp-<pid>.rdb and renames it into place: this open handle stays one consistent
        # snapshot even if a later save replaces the path while it streams.
        with handle:
            try:
                rdb_version = check_rdb_header(handle, self._rdb)
            except IntegrityError as exc:
                raise SourceError(exc.msg)
            handle.seek(0)
            rdb_check = self._check_file(handle) if self.verify else "not checked (verify: false)"
            keys_after = keyspace(info)
            self._verification = {
                "keys": {db: value["keys"] for db, value in keys_after.items()},
                "expires": {db: value["expires"] for db, value in keys_after.items()},
                "keys_tolerance": key_tolerance(info, churn_before),
                "keys_stable": keys_before == keys_after,
                "rdb_version": rdb_version,
                "rdb_bytes": os.fstat(handle.fileno()).st_size,
                "rdb_check": rdb_check,
            }
            yield handle


def _save_marker(info):
    # rdb_saves (Redis 7+) counts completed saves; LASTSAVE (one-second resolution) for older servers
    return info.get("rdb_saves"), info.get("rdb_last_save_time")


def open_latest_save(client, open_file, attempts=20):
    """Open the RDB file and read INFO (key counts and the change counters in one reply) so that both refer
    to the same completed save: when another save completes in between, read both again."""
    for _attempt in range(attempts):
        marker = _save_marker(client.info("persistence"))
        handle = open_file()
        info = client.info()
        if _save_marker(info) == marker:
            return handle, info
        handle.close()
    raise SourceError("Redis at %s completed another save each of %d times lifeboat read the key counts of its "
                      "own; the counts cannot be tied to the file. Check the save points (a save every second?) "
                      "and run again" % (client.where, attempts))
