"""The restore side of Redis: restore_redis places the RDB of a set where the live server keeps its own (asked of
the server, never taken from the set) once its sha256, header, redis-check-rdb and Functions check passed, with an
atomic swap that keeps the previous file aside; it switches the server's save points off so the restart cannot
save over the placed file, restarts Redis (restart_command or systemctl), checks the loaded key counts against the
manifest (keys.py) and puts the previous RDB back, restarting on it, when anything fails. put_back_redis undoes a
restore the application rejected, from the file kept aside."""

import contextlib
import os
import shutil
import stat as stat_module
import tempfile
import time

from ...core.errors import ConfigError, IntegrityError, RestoreError, SourceError, ToolError
from ...core.files import Swap, fsync_dir, kept_for, parse_mode, resolve_ids
from ...core.options import argument_spec
from ...core.process import run_tool
from ...pipeline.restore import fetch_to_file, find_set, set_result
from .backup import bgsave_and_wait
from .connection import describe_connection, locate_rdb
from .keys import compare_keys, key_expectation
from .options import DEFAULT_SERVICE, RESTART
from .rdb import RdbFormatError, check_rdb_header, has_functions
from .resp import ProtocolError, RedisClient, RespError, keyspace

AOF_HELP = ("Redis has appendonly yes: at start it loads the append-only file and ignores the RDB, so the restored "
            "data would not be used. Set 'appendonly no' in redis.conf (and CONFIG SET appendonly no), run the "
            "restore, then turn AOF back on with CONFIG SET appendonly yes (Redis rewrites the AOF from the "
            "restored data) and put 'appendonly yes' back in redis.conf")


def restart_spec():
    """Module argument_spec entries of the restart options (doc fragment lifeboat.backup.redis.restart), from
    options.RESTART."""
    return argument_spec(RESTART)


def default_restart_command(service_name):
    return ["systemctl", "restart", service_name or DEFAULT_SERVICE]


def restart_argv(restart_command, service_name):
    """The command that restarts Redis: restart_command, else systemctl restart <service_name>."""
    argv = list(restart_command) if restart_command else default_restart_command(service_name)
    if not all(isinstance(part, str) and part for part in argv):
        raise ConfigError("restart_command must be a list of non-empty strings (an argument list, no shell)")
    return argv


class _Server(object):
    """What the restore needs from the live server: where the RDB is, AOF state, save points."""

    def __init__(self, connection, start_timeout):
        self.connection = connection
        self.start_timeout = start_timeout
        self.where = describe_connection(connection)

    def connect(self):
        client = RedisClient(**self.connection)
        try:
            client.execute("PING")
        except ProtocolError as exc:
            client.close()
            raise SourceError(str(exc), reason="connect")
        except RespError as exc:
            client.close()
            if str(exc).startswith("LOADING"):
                raise SourceError("Redis is still loading its data", reason="loading")
            raise SourceError("Redis refused PING: %s; check redis_user/redis_password" % exc, reason="auth")
        return client

    def run_id(self):
        with self.connect() as client:
            return client.info("server").get("run_id")

    def wait_ready(self, old_run_id=None):
        """Connect once the restarted server (a new run_id) answers and has loaded its data; returns
        (INFO keyspace, INFO persistence)."""
        deadline = time.monotonic() + self.start_timeout
        last_error = reason = None
        while time.monotonic() < deadline:
            try:
                with self.connect() as client:
                    if old_run_id and client.info("server").get("run_id") == old_run_id:
                        raise SourceError("the server answering is still the one from before the restart "
                                          "(same run_id): restart_command did not restart it (redis-cli exits 0 "
                                          "even when the server refuses its SHUTDOWN, e.g. NOAUTH without "
                                          "REDISCLI_AUTH)", reason="old")
                    info = client.info("persistence")
                    if info.get("loading") == "1":
                        raise SourceError("Redis is still loading its data", reason="loading")
                    return keyspace(client.info("keyspace")), info
            except SourceError as exc:
                if exc.details.get("reason") == "auth":
                    raise
                last_error, reason = exc.msg, exc.details.get("reason")
            except (ProtocolError, RespError) as exc:
                last_error, reason = str(exc), None
            time.sleep(0.2)
        # reason "old": the server from before still answers, so it never stopped and never loaded the placed file
        raise RestoreError("Redis did not come back within start_timeout (%s s) after the restart: %s"
                           % (self.start_timeout, last_error), not_restarted=reason == "old")


def restore_redis(repository, job, connection, backup="latest", before=None, identity_file=None, rdb_path=None,
                  service_name=DEFAULT_SERVICE, restart_command=None, start_timeout=300, owner=None, group=None,
                  mode=None, keep_previous=True, allow_key_mismatch=False, allow_functions=False, check_mode=False):
    """Place the RDB of a set, restart Redis, check key counts. On failure the previous RDB is put back
    (and the server restarted on it when it had already been restarted)."""
    backup_set = find_set(repository, job, "redis", backup, before)
    expectation = key_expectation(backup_set.manifest)
    argv = restart_argv(restart_command, service_name)
    server = _Server(connection, start_timeout)
    result = {"backup": set_result(repository, job, backup_set), "previous": None, "restart_command": argv}

    live = True
    try:
        client = server.connect()
    except SourceError as exc:
        if exc.details.get("reason") not in ("connect",) or not rdb_path:
            raise RestoreError("%s. The restore needs the server to find its RDB file and AOF setting: start "
                               "Redis, or set rdb_path (restart_command then starts it)" % exc.msg)
        live = False
        client = None
    if client is not None:
        with client:
            try:
                role = client.info("replication").get("role")
                if role == "slave":
                    raise RestoreError("Redis at %s is a replica: restore the primary (a replica reloads its data "
                                       "from the primary)" % client.where)
                # the RDB path comes from the live server (or the operator's rdb_path), never from the set
                target = locate_rdb(client, rdb_path)
                if client.config_get("appendonly") == "yes":
                    raise RestoreError(AOF_HELP + "; nothing was changed")
            except RespError as exc:
                raise RestoreError("Redis at %s refused a command the restore needs: %s" % (client.where, exc))
    else:
        target = os.path.abspath(os.path.expanduser(rdb_path))
    result["restored_to"] = target
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise RestoreError("the RDB directory %s does not exist on this host: run the task on the Redis host or "
                           "fix rdb_path" % directory)
    if os.path.islink(target):
        # keeping it aside or copying its attributes would act on whatever it points to
        raise RestoreError("the RDB path %s is a symlink; Redis itself replaces it with a regular file at its next "
                           "save. Point dir/dbfilename (or rdb_path) at the real file; nothing was changed" % target)

    # mkstemp creates the staging file with O_EXCL (never through a symlink); it is only renamed into place
    # once its sha256 and RDB checks passed
    fd, staged = tempfile.mkstemp(prefix=".%s.lifeboat-restore-" % os.path.basename(target),
                                  dir=None if check_mode else directory)
    swap = None
    replaced_config = {}
    try:
        with os.fdopen(fd, "wb") as handle:
            fetch_to_file(repository, job, backup_set, handle, identity_file)
            handle.flush()
            os.fsync(handle.fileno())
            result["verification"] = verification = _verify_rdb(staged, backup_set.manifest, allow_functions)
            if check_mode:
                os.unlink(staged)  # check mode stages in the temp directory: leave nothing there
                return result
            _apply_attributes_fd(handle.fileno(), staged, target, directory, owner, group, mode)
        if live:
            if keep_previous:
                _save_live(server)  # the copy kept aside is then the data as it is now, not an older save
            _quiet_shutdown(server, replaced_config)  # the restart's shutdown must not save over the placed file
        old_run_id = server.run_id() if live else None
        swap = Swap(staged, target)
        result["previous"] = swap.run()
        placed = os.lstat(target)
        try:
            _restart(argv, start_timeout)
            actual, persistence = server.wait_ready(old_run_id)
        except (RestoreError, ToolError, SourceError) as exc:
            if exc.details.get("not_restarted"):
                # the server from before runs on: no second restart, the file under it goes back as it was
                swap.rollback()
                raise RestoreError("%s; the previous RDB was put back and Redis, never restarted, still serves the "
                                   "data of before. Fix restart_command and run again" % exc.msg)
            raise RestoreError("%s; %s" % (getattr(exc, "msg", str(exc)),
                                           _put_back(server, swap, argv, start_timeout, live)))
        if _saved_over(target, placed, persistence):
            raise RestoreError(
                "the restart saved the running data over the restored RDB before the new server loaded it (the "
                "stop path of restart_command saves on shutdown, e.g. SHUTDOWN SAVE, or shutdown-on-sigterm save "
                "in redis.conf), so Redis did not run on set %s; %s. Make the stop path of restart_command not "
                "save (SHUTDOWN NOSAVE, or SIGTERM with the save points that lifeboat switches off) and run again"
                % (backup_set.set_id, _put_back(server, swap, argv, start_timeout, True)))
        verification["keys"] = actual_counts = {db: value["keys"] for db, value in actual.items()}
        if persistence.get("rdb_last_load_keys_loaded") not in (None, ""):
            verification["keys_loaded"] = int(persistence["rdb_last_load_keys_loaded"])
        if expectation is not None:
            expected, expires, tolerance = expectation
            ok, problems = compare_keys(expected, expires, tolerance, actual_counts)
            verification["keys_tolerance"] = tolerance
            verification["keys_match"] = ok
            if not ok and not allow_key_mismatch:
                raise RestoreError(
                    "restored Redis does not hold the keys of set %s: %s. That is more than the writes Redis counted "
                    "during the backup explain: the set's data does not match its manifest (damaged, or written by "
                    "someone else than lifeboat); %s. Restore another set (backup: <id>) and check who can write to "
                    "the repository; if you trust this set anyway, allow_key_mismatch: true restores it with a "
                    "warning" % (backup_set.set_id, "; ".join(problems),
                                 _put_back(server, swap, argv, start_timeout, True)))
            if problems:
                result["warnings"] = ["key counts differ from the manifest of set %s beyond what the backup recorded "
                                      "(kept because allow_key_mismatch is true): %s"
                                      % (backup_set.set_id, "; ".join(problems))]
        if not keep_previous:
            swap.discard_previous()
            result["previous"] = None
        return result
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
        if replaced_config:
            with contextlib.suppress(Exception):
                _restore_config(server, replaced_config)  # whatever server runs now keeps its save settings
        raise
    finally:
        if not check_mode:
            fsync_dir(directory)


def _apply_attributes_fd(fd, staged, target, directory, owner, group, mode):
    """Owner/group/mode of the staged file, set through its descriptor (a name in the RDB directory, which the
    redis user can write, could be swapped for a symlink). Unset ones come from the file replaced when that is a
    regular file (never through a symlink), else the directory's owner and 0640."""
    like = os.lstat(target) if os.path.lexists(target) else None
    like = like if like is not None and stat_module.S_ISREG(like.st_mode) else None
    uid, gid = resolve_ids(owner, group)
    mode = parse_mode(mode)
    if like is not None:
        uid = like.st_uid if uid == -1 else uid
        gid = like.st_gid if gid == -1 else gid
        mode = (like.st_mode & 0o777) if mode is None else mode
    elif (uid, gid) == (-1, -1):
        owner_of = os.stat(directory)
        uid, gid = owner_of.st_uid, owner_of.st_gid
    if (uid, gid) != (-1, -1):
        try:
            os.fchown(fd, uid, gid)
        except PermissionError:
            raise RestoreError("cannot give %s to owner/group %s:%s: run the restore as root (become: true)"
                               % (staged, owner or uid, group or gid))
    os.fchmod(fd, 0o640 if mode is None else mode & 0o777)  # an RDB never needs setuid/setgid/sticky


def _saved_over(target, placed, persistence):
    """True when the file at `target` is not the one placed although the restarted server has not saved yet
    (rdb_saves:0, Redis 7+): the old server's shutdown wrote its data over the placed file."""
    if persistence.get("rdb_saves") != "0":
        return False  # the new server saved itself (or is too old to say): its file may rightly differ
    try:
        now = os.lstat(target)
    except FileNotFoundError:
        return True
    return (now.st_dev, now.st_ino) != (placed.st_dev, placed.st_ino)


def _verify_rdb(staged, manifest, allow_functions=False):
    try:
        version = check_rdb_header(staged, "the stored data of set %s" % manifest["id"])
    except IntegrityError as exc:
        raise IntegrityError("%s; nothing was changed: restore another set" % exc.msg)
    verification = {"sha256": "ok", "rdb_version": version}
    checker = shutil.which("redis-check-rdb")
    if checker:
        try:
            run_tool([checker, staged], "checking the restored RDB", timeout=3600)
        except ToolError as exc:
            raise IntegrityError("restored RDB of set %s fails redis-check-rdb (%s); nothing was changed: restore "
                                 "another set" % (manifest["id"], exc.msg))
        verification["rdb_check"] = "ok"
    else:
        verification["rdb_check"] = "skipped: redis-check-rdb is not installed"
    try:
        verification["functions"] = has_functions(staged)
    except RdbFormatError as exc:
        raise IntegrityError("the RDB of set %s does not parse (%s); nothing was changed: restore another set"
                             % (manifest["id"], exc))
    if verification["functions"] and not allow_functions:
        raise RestoreError("the RDB of set %s holds Redis Functions libraries: Lua code that Redis runs when it loads "
                           "the file, so a set written by someone else could run code in the server. Nothing was "
                           "changed. If the application uses Redis Functions (FUNCTION LOAD, FCALL) and you trust the "
                           "set, set allow_functions: true" % manifest["id"])
    return verification


def _save_live(server):
    with server.connect() as client:
        try:
            bgsave_and_wait(client, server.start_timeout)
        except SourceError as exc:
            raise RestoreError("saving the live data before the restore failed, so nothing was changed: %s" % exc.msg)


SHUTDOWN_SETTINGS = ("shutdown-on-sigterm", "shutdown-on-sigint")  # Redis 7+; absent (None) before


def _quiet_shutdown(server, replaced):
    """Make the running server's next shutdown save nothing, however the restart stops it: save points off (a
    plain SHUTDOWN or SIGTERM, as systemd sends, then saves nothing) and a 'save' flag of shutdown-on-sigterm or
    -sigint (save even without save points) turned into 'nosave'. The values replaced go into `replaced`, for
    _restore_config when the restore fails before the restart; redis.conf brings them back at the restart."""
    with server.connect() as client:
        try:
            for name in SHUTDOWN_SETTINGS:
                value = client.config_get(name)
                if value and "save" in value.split():
                    flags = [flag for flag in value.split() if flag not in ("save", "default")]
                    replaced.setdefault(name, value)
                    client.execute("CONFIG", "SET", name, " ".join(["nosave"] + flags))
            replaced.setdefault("save", client.config_get("save"))
            client.execute("CONFIG", "SET", "save", "")
        except RespError as exc:
            raise RestoreError("Redis at %s refused CONFIG (%s): the restart could save the live data over the "
                               "restored file, so nothing was changed. Allow CONFIG for redis_user, or stop Redis "
                               "and pass rdb_path" % (client.where, exc))


def _restore_config(server, replaced):
    with server.connect() as client:
        for name, value in replaced.items():
            if value is not None:
                client.execute("CONFIG", "SET", name, value)


def _restart(argv, timeout):
    run_tool(argv, "restarting Redis (restart_command)", timeout=timeout)


def _put_back(server, swap, argv, timeout, restart):
    """The previous RDB back in place, and Redis restarted on it when it runs. Returns what happened, for the
    failure message."""
    old_run_id = None
    if restart:
        with contextlib.suppress(Exception):
            _quiet_shutdown(server, {})  # the shutdown must not save the rejected data over the file put back
            old_run_id = server.run_id()
    swap.rollback()
    if not restart:
        return "the previous RDB was put back"
    try:
        _restart(argv, timeout)
        actual, _persistence = server.wait_ready(old_run_id)
    except (RestoreError, ToolError, SourceError) as exc:
        return ("the previous RDB was put back at %s, but Redis did not restart on it (%s): start Redis by hand"
                % (swap.target, getattr(exc, "msg", str(exc))))
    return "the previous RDB was put back and Redis restarted on it (%s)" % (
        ", ".join("%s: %d keys" % (db, value["keys"]) for db, value in actual.items()) or "no keys")


def put_back_redis(connection, previous, service_name=DEFAULT_SERVICE, restart_command=None, start_timeout=300,
                   check_mode=False):
    """Undo a restore whose data the application rejected: the RDB that redis_restore kept aside
    (`previous`, <rdb>.lifeboat-prev-<time>) replaces the restored one, and Redis is restarted on it. Its save
    points are switched off first, so the restart's shutdown cannot save the rejected data over it (the
    server's config brings them back). Writes made since the restore are lost, as with any rollback.
    Returns {'restored_to', 'previous', 'restart_command', 'keys', 'changed'}."""
    previous = os.path.abspath(os.path.expanduser(previous or ""))
    target = kept_for(previous)
    if not target:
        raise ConfigError("previous %s is not an RDB that redis_restore kept aside (those are named "
                          "<rdb>.lifeboat-prev-<time>, as redis_restore returns them in `previous`)" % previous)
    if not os.path.isfile(previous):
        raise RestoreError("%s does not exist, so there is nothing to put back (was it put back or removed "
                           "already?); Redis was not touched" % previous)
    argv = restart_argv(restart_command, service_name)
    server = _Server(connection, start_timeout)
    located = old_run_id = None  # a stopped server: the file goes back and restart_command starts it
    try:
        client = server.connect()
    except SourceError as exc:
        if exc.details.get("reason") != "connect":
            raise RestoreError("%s; nothing was changed" % exc.msg)
        client = None
    if client is not None:
        with client:
            try:
                located = locate_rdb(client)
                old_run_id = client.info("server").get("run_id")
            except (SourceError, RespError) as exc:
                raise RestoreError("Redis at %s refused what the put-back needs (%s): it asks the server where its "
                                   "RDB is and switches its save points off (CONFIG). Allow CONFIG for redis_user, or "
                                   "stop Redis and run again; nothing was changed" % (
                                       server.where, getattr(exc, "msg", exc)))
    if located and os.path.abspath(located) != target:
        raise ConfigError("Redis at %s loads %s, not %s: this previous RDB belongs to another server or file; "
                          "nothing was changed" % (server.where, located, target))
    result = {"restored_to": target, "previous": previous, "restart_command": argv, "keys": None, "changed": True}
    if check_mode:
        return result
    if old_run_id:
        _quiet_shutdown(server, {})
    os.replace(previous, target)
    fsync_dir(os.path.dirname(target))
    try:
        _restart(argv, start_timeout)
        actual, _persistence = server.wait_ready(old_run_id)
    except (RestoreError, ToolError, SourceError) as exc:
        raise RestoreError("the previous RDB is back at %s, but Redis did not restart on it: %s; start Redis by "
                           "hand" % (target, getattr(exc, "msg", str(exc))))
    result["keys"] = {db: value["keys"] for db, value in actual.items()}
    return result
