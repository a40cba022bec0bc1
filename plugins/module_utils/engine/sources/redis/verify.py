"""Test restore of a Redis set: the RDB loaded by a scratch redis-server, its key counts per database compared
with the manifest's (the same comparison redis_restore makes), then the server stopped and the scratch removed.

Order (a set is untrusted input): the RDB is written into a private (0700) scratch directory and its sha256
checked at the end of that write; then its preamble is read (rdb.py): an RDB holding Redis Functions
libraries (Lua that redis-server runs while loading) is refused unless the job allows functions. Only then does a
redis-server start on it, listening on a unix socket in that directory only (port 0: no TCP), with
``save ""`` and ``appendonly no`` so it writes nothing, and stopped with SHUTDOWN NOSAVE.
"""

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time

from ...core.errors import ConfigError, IntegrityError, SourceError, ToolError
from .keys import compare_keys, key_expectation
from .rdb import RdbFormatError, check_rdb_header, has_functions
from .resp import ProtocolError, RedisClient, RespError, keyspace
from ...pipeline.restore import fetch_to_file

DEFAULT_START_TIMEOUT = 600
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes
LOG_TAIL = 1500
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the scratch redis-server (before exec): SIGKILL when lifeboat dies, so a killed verify never leaves a
    server holding the set's data running (Linux prctl; elsewhere the verify's own cleanup is all there is)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _server_binary(options):
    binary = options.get("redis_server_bin") or shutil.which("redis-server")
    if not binary or not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise ToolError("redis-server %s: the test restore of a Redis set loads it into a scratch redis-server; "
                        "install redis-server on this host or set redis_server_bin (verify.redis.redis_server_bin)"
                        % ("%s is not an executable file" % binary if binary else "is not installed or not on PATH"))
    return binary


def _log_tail(path):
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - LOG_TAIL))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


class ScratchRedis(object):
    """redis-server on `rdb` (in the private directory `work`), on a unix socket only, persisting nothing."""

    def __init__(self, binary, work, socket_dir, timeout, databases=16):
        self.socket = os.path.join(socket_dir, "redis.sock")
        self.log = os.path.join(work, "redis.log")
        self.timeout = timeout
        argv = [binary, "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700", "--dir", work,
                "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", self.log, "--databases", str(databases)]
        try:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, close_fds=True, cwd=work,
                                            preexec_fn=_die_with_parent)  # pylint: disable=subprocess-popen-preexec-fn
        except OSError as exc:
            raise ToolError("cannot start %s: %s" % (binary, exc.strerror or exc))

    def wait_loaded(self, where):
        """The keyspace once the server has loaded the RDB; IntegrityError with its log when it refuses it."""
        deadline = time.monotonic() + self.timeout
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise IntegrityError("redis-server refused to load the RDB of %s (it exited with status %s): %s; "
                                     "do not rely on this set" % (where, self.process.returncode,
                                                                  _log_tail(self.log) or "no log output"))
            if os.path.exists(self.socket):
                try:
                    with RedisClient(unix_socket=self.socket, timeout=30) as client:
                        persistence = client.info("persistence")
                        if persistence.get("loading") != "1":
                            return keyspace(client.info("keyspace")), client.info("server").get("redis_version")
                except (OSError, ProtocolError, RespError, SourceError) as exc:
                    last = getattr(exc, "msg", None) or str(exc)
            time.sleep(0.05)
        raise IntegrityError("the scratch redis-server did not finish loading the RDB of %s within %d s (%s); raise "
                             "verify.redis.start_timeout for a large set" % (where, self.timeout, last or "no answer"))

    def stop(self):
        if self.process.poll() is None:
            with contextlib.suppress(Exception):
                with RedisClient(unix_socket=self.socket, timeout=10) as client:
                    client.execute("SHUTDOWN", "NOSAVE")
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def test_restore(repository, job, backup_set, identity_file, scratch_dir, options):
    """Options: ``redis`` (``redis_server_bin``, ``allow_functions``, ``start_timeout``), ``allow_functions``."""
    settings = dict(options.get("redis") or {})
    unknown = sorted(set(settings) - {"redis_server_bin", "allow_functions", "start_timeout"})
    if unknown:
        raise ConfigError("verify.redis has unknown option(s) %s (known: redis_server_bin, allow_functions, "
                          "start_timeout)" % ", ".join(unknown))
    allow_functions = bool(settings.get("allow_functions", options.get("allow_functions")))
    manifest = backup_set.manifest
    where = "set %s of job %s" % (backup_set.set_id, job)
    expectation = key_expectation(manifest)  # a malformed manifest fails before anything is written
    binary = _server_binary(settings)
    work = tempfile.mkdtemp(prefix="lifeboat-verify-redis-", dir=scratch_dir)  # 0700
    socket_dir = work
    if len(os.path.join(work, "redis.sock").encode()) > MAX_SOCKET_PATH:
        socket_dir = tempfile.mkdtemp(prefix="lbv-")  # a short private path for the socket
    server = None
    try:
        rdb = os.path.join(work, "dump.rdb")
        fd = os.open(rdb, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            total = fetch_to_file(repository, job, backup_set, handle, identity_file)  # sha256 checked at its end
        version = check_rdb_header(rdb, "the stored data of %s" % where)
        try:
            functions = has_functions(rdb)
        except RdbFormatError as exc:
            raise IntegrityError("the RDB of %s does not parse (%s) although its sha256 matches; do not rely on this "
                                 "set" % (where, exc))
        report = {"raw_size": total, "rdb_version": version, "functions": functions}
        if functions and not allow_functions:
            raise IntegrityError("the RDB of %s holds Redis Functions libraries: Lua code that redis-server runs when "
                                 "it loads the file, so it was not loaded. If the application uses Redis Functions and "
                                 "you trust the set, set allow_functions: true in the job's verify.redis"
                                 % where, report=report)
        timeout = int(settings.get("start_timeout") or DEFAULT_START_TIMEOUT)
        # as many databases as the manifest names (a set of a server with more than 16 loads only so)
        databases = max([16] + [int(db[2:]) + 1 for db in (expectation[0] if expectation else {})])
        server = ScratchRedis(binary, work, socket_dir, timeout, databases)
        loaded, server_version = server.wait_loaded(where)
        server.stop()
        actual = {db: value["keys"] for db, value in loaded.items()}
        report.update({"keys": actual, "scratch_redis_version": server_version})
        if expectation is None:
            report["checked"] = {"keys": "not recorded in the manifest (made with verify: false)"}
            return report
        expected, expires, tolerance = expectation
        ok, problems = compare_keys(expected, expires, tolerance, actual)
        report["checked"] = {"keys": {"expected": expected, "actual": actual, "expires": expires,
                                      "keys_tolerance": tolerance}}
        report["keys_match"] = ok
        if not ok:
            raise IntegrityError("the RDB of %s loads, but its key counts do not match the manifest: %s; do not rely "
                                 "on this set" % (where, "; ".join(problems)), report=report)
        return report
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
        if socket_dir != work:
            shutil.rmtree(socket_dir, ignore_errors=True)
