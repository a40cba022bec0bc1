"""How lifeboat reaches a Redis server: the connection options of the modules (their argument_spec entries, from
options.CONNECTION, and the keyword arguments of resp.RedisClient built from them; the password comes from the
options or REDISCLI_AUTH and never reaches argv or a manifest), the redacted description of a connection for
manifests and messages, the error raised when the server refuses a command, and where the server keeps its RDB
file. Used by the backup, the restore and the put-back alike."""

import os

from ...core.errors import SourceError
from ...core.options import argument_spec
from .options import CONNECTION
from .resp import RespError


def connection_spec():
    """Module argument_spec entries of the connection options (doc fragment lifeboat.backup.redis), from
    options.CONNECTION."""
    return argument_spec(CONNECTION)


def connection_from_options(options):
    """Connection keyword arguments for RedisClient from module option names. The password falls back to
    the REDISCLI_AUTH environment variable (as for redis-cli); it is never passed on a command line."""
    password = options.get("redis_password")
    if password in (None, ""):
        password = os.environ.get("REDISCLI_AUTH") or None
    return {
        "host": options.get("redis_host") or "127.0.0.1",
        "port": int(options.get("redis_port") or 6379),
        "unix_socket": options.get("redis_socket") or None,
        "username": options.get("redis_user") or None,
        "password": password,
        "tls": bool(options.get("redis_tls")),
        "tls_ca_file": options.get("redis_tls_ca_file") or None,
    }


def describe_connection(connection):
    """Where `connection` goes, for manifests and messages: socket or host and port, user, TLS; never the password."""
    where = {"socket": connection["unix_socket"]} if connection.get("unix_socket") else {
        "host": connection["host"], "port": connection["port"]}
    if connection.get("username"):
        where["user"] = connection["username"]
    if connection.get("tls"):
        where["tls"] = True
    return where


def command_error(client, what, exc):
    """The SourceError for a command the server refused, with what to grant when it is a permission problem."""
    text = str(exc)
    if text.startswith("NOPERM") or text.startswith("NOAUTH"):
        hint = "grant the user this command (ACL SETUSER ... +%s) or set redis_user/redis_password" % what.split()[0].lower()
    else:
        hint = "check the server log"
    return SourceError("Redis at %s refused %s: %s; %s" % (client.where, what, text, hint))


def locate_rdb(client, rdb_path=None):
    """The RDB file of the server: `rdb_path` when given, else CONFIG GET dir + dbfilename."""
    if rdb_path:
        return os.path.abspath(os.path.expanduser(rdb_path))
    try:
        directory = client.config_get("dir")
        filename = client.config_get("dbfilename")
    except RespError as exc:
        raise SourceError("cannot ask Redis at %s where its RDB file is (CONFIG GET: %s); set rdb_path to the "
                          "file (dir + dbfilename of redis.conf)" % (client.where, exc))
    if not directory or not filename:
        raise SourceError("Redis at %s did not report dir/dbfilename; set rdb_path" % client.where)
    return os.path.join(directory, filename)
