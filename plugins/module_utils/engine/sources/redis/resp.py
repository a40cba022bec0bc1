"""A minimal Redis client speaking RESP2 over a TCP or Unix socket: enough for BGSAVE, LASTSAVE, INFO,
CONFIG GET/SET, DBSIZE and AUTH without the redis-py dependency. Passwords go over the socket, never argv."""

import socket
import ssl

from ...core.errors import SourceError

CRLF = b"\r\n"


class RespError(Exception):
    """An error reply from the server (`-ERR ...`); `str(exc)` is the server's text."""


class ProtocolError(Exception):
    """The peer did not speak RESP (wrong port, TLS mismatch, connection cut)."""


def _bulk(value):
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        data = repr(value).encode("ascii")
    else:
        raise TypeError("RESP arguments are bytes, str, int or float, not %s" % type(value).__name__)
    return b"$%d\r\n%s\r\n" % (len(data), data)


def encode_command(*args):
    """One command as a RESP array of bulk strings."""
    if not args:
        raise ValueError("empty command")
    return b"*%d\r\n" % len(args) + b"".join(_bulk(arg) for arg in args)


class Parser(object):
    """Incremental RESP2 (plus the common RESP3 scalars) parser. feed() bytes, then gets() replies.

    Error replies are returned as RespError instances (not raised) so a pipeline keeps its order."""

    def __init__(self):
        self._buffer = bytearray()
        self._pos = 0

    def feed(self, data):
        if self._pos:
            del self._buffer[:self._pos]
            self._pos = 0
        self._buffer.extend(data)

    def _line(self, pos):
        end = self._buffer.find(CRLF, pos)
        if end < 0:
            return None, pos
        return bytes(self._buffer[pos:end]), end + 2

    def _parse(self, pos):
        """Returns (value, new_pos), or raises IndexError when more data is needed."""
        if pos >= len(self._buffer):
            raise IndexError
        line, after = self._line(pos + 1)
        if line is None:
            raise IndexError
        kind = self._buffer[pos:pos + 1]
        if kind == b"+":
            return line.decode("utf-8", "replace"), after
        if kind == b"-":
            return RespError(line.decode("utf-8", "replace")), after
        if kind == b":":
            return int(line), after
        if kind == b",":
            return float(line), after
        if kind == b"_":
            return None, after
        if kind == b"#":
            return line == b"t", after
        if kind in (b"$", b"=", b"!"):
            length = int(line)
            if length < 0:
                return None, after
            if len(self._buffer) < after + length + 2:
                raise IndexError
            data = bytes(self._buffer[after:after + length])
            if self._buffer[after + length:after + length + 2] != CRLF:
                raise ProtocolError("bulk string of %d bytes is not followed by CRLF" % length)
            if kind == b"!":
                return RespError(data.decode("utf-8", "replace")), after + length + 2
            return data, after + length + 2
        if kind in (b"*", b"~", b">", b"%"):
            count = int(line)
            if count < 0:
                return None, after
            if kind == b"%":
                count *= 2
            items = []
            pos = after
            for _index in range(count):
                item, pos = self._parse(pos)
                items.append(item)
            if kind == b"%":
                return dict(zip(items[::2], items[1::2])), pos
            return items, pos
        raise ProtocolError("unexpected RESP type byte %r: is this a Redis server?" % bytes(kind))

    def gets(self):
        """The next complete reply, or the class attribute NOTHING when more data is needed."""
        try:
            value, pos = self._parse(self._pos)
        except IndexError:
            return Parser.NOTHING
        except ValueError:
            raise ProtocolError("malformed RESP reply: is this a Redis server?")
        self._pos = pos
        return value


Parser.NOTHING = object()


def parse_info(text):
    """INFO output -> {field: value}; keyspace lines (db0:keys=1,expires=0,...) become dicts of ints."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    fields = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        if key.startswith("db") and key[2:].isdigit() and "=" in value:
            parsed = {}
            for part in value.split(","):
                name, _sep, number = part.partition("=")
                try:
                    parsed[name] = int(number)
                except ValueError:
                    parsed[name] = number
            fields[key] = parsed
        else:
            fields[key] = value
    return fields


def keyspace(info):
    """{'db0': {'keys': N, 'expires': M}, ...} from parsed INFO (only databases holding keys are listed)."""
    return {key: {"keys": value.get("keys", 0), "expires": value.get("expires", 0)}
            for key, value in sorted(info.items()) if isinstance(value, dict) and key.startswith("db")}


class RedisClient(object):
    """One connection. `execute()` raises RespError for error replies; `pipeline()` returns them in place."""

    def __init__(self, host="127.0.0.1", port=6379, unix_socket=None, username=None, password=None,
                 timeout=30.0, tls=False, tls_ca_file=None):
        self.host = host
        self.port = port
        self.unix_socket = unix_socket
        self.where = unix_socket if unix_socket else "%s:%s" % (host, port)
        self._sock = None
        self._parser = Parser()
        try:
            if unix_socket:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                sock.connect(unix_socket)
            else:
                sock = socket.create_connection((host, int(port)), timeout=timeout)
            if tls:
                context = ssl.create_default_context(cafile=tls_ca_file)
                sock = context.wrap_socket(sock, server_hostname=None if unix_socket else host)
        except (OSError, ssl.SSLError) as exc:
            raise SourceError("cannot connect to Redis at %s: %s; check that redis-server is running and "
                              "redis_host/redis_port (or redis_socket) point at it" % (self.where, exc),
                              reason="connect")
        self._sock = sock
        if password:
            args = ("AUTH", username, password) if username else ("AUTH", password)
            try:
                self.execute(*args)
            except RespError as exc:
                self.close()
                code = str(exc).split(" ", 1)[0]
                raise SourceError("authentication to Redis at %s as user %s failed (%s); check redis_user and "
                                  "redis_password (or REDISCLI_AUTH)" % (self.where, username or "default", code),
                                  reason="auth")

    def _read_reply(self):
        while True:
            value = self._parser.gets()
            if value is not Parser.NOTHING:
                return value
            try:
                data = self._sock.recv(65536)
            except socket.timeout:
                raise ProtocolError("no reply from Redis at %s before the timeout" % self.where)
            except OSError as exc:
                raise ProtocolError("connection to Redis at %s failed: %s" % (self.where, exc))
            if not data:
                raise ProtocolError("Redis at %s closed the connection" % self.where)
            self._parser.feed(data)

    def _send(self, payload):
        try:
            self._sock.sendall(payload)
        except OSError as exc:
            raise ProtocolError("connection to Redis at %s failed: %s" % (self.where, exc))

    def execute(self, *args):
        self._send(encode_command(*args))
        reply = self._read_reply()
        if isinstance(reply, RespError):
            raise reply
        return reply

    def pipeline(self, commands):
        """Send many commands at once; returns their replies (RespError instances for errors)."""
        commands = list(commands)
        self._send(b"".join(encode_command(*command) for command in commands))
        return [self._read_reply() for _command in commands]

    def info(self, section=None):
        reply = self.execute("INFO", section) if section else self.execute("INFO")
        return parse_info(reply)

    def config_get(self, name):
        reply = self.execute("CONFIG", "GET", name)
        if isinstance(reply, dict):
            values = reply
        else:
            values = dict(zip(reply[::2], reply[1::2]))
        for key, value in values.items():
            if (key.decode() if isinstance(key, bytes) else key) == name:
                return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
        return None

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
