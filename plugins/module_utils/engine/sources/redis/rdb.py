"""Reading the preamble of a Redis RDB file: whether it carries Redis Functions libraries, Lua code that
redis-server runs (in its Lua sandbox) when it loads the file. A restore asks before it places a set's RDB.

Layout (Redis 7 rdbSaveRio): "REDIS" + 4-digit version, AUX fields (0xFA key value), module AUX data (0xF7), then
the function libraries (0xF5; 0xF6 in 7.0 release candidates), then the databases (0xFE SELECTDB ...).
check_rdb_header reads the first 9 bytes of a file the backup, the restore and the test restore handle."""

import struct

from ...core.errors import IntegrityError

RDB_MAGIC = b"REDIS"

OP_FUNCTION_PRE_GA = 0xF6
OP_FUNCTION2 = 0xF5
OP_MODULE_AUX = 0xF7
OP_AUX = 0xFA
MODULE_EOF, MODULE_SINT, MODULE_UINT, MODULE_FLOAT, MODULE_DOUBLE, MODULE_STRING = range(6)


class RdbFormatError(Exception):
    """The preamble does not parse: the caller treats the file as damaged."""


def check_rdb_header(path_or_handle, what):
    """The RDB version of a file (a path or an open handle) that starts with "REDIS" and 4 digits; IntegrityError
    naming `what` otherwise."""
    if hasattr(path_or_handle, "read"):
        header = path_or_handle.read(9)
    else:
        with open(path_or_handle, "rb") as handle:
            header = handle.read(9)
    if header[:5] != RDB_MAGIC or not header[5:9].isdigit():
        raise IntegrityError("%s is not a Redis RDB file (it does not start with 'REDIS' and a version)" % what)
    return header[5:9].decode("ascii")


def _read(handle, count):
    data = handle.read(count)
    if len(data) != count:
        raise RdbFormatError("the file ends inside its preamble")
    return data


def _length(handle):
    """An RDB length; (value, special) where special is True for the integer/LZF string encodings."""
    first = _read(handle, 1)[0]
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, False
    if kind == 1:
        return ((first & 0x3F) << 8) | _read(handle, 1)[0], False
    if first == 0x80:
        return struct.unpack(">I", _read(handle, 4))[0], False
    if first == 0x81:
        return struct.unpack(">Q", _read(handle, 8))[0], False
    if kind == 3:
        return first & 0x3F, True
    raise RdbFormatError("unknown length encoding 0x%02x" % first)


def _skip_string(handle):
    value, special = _length(handle)
    if not special:
        _skip(handle, value)
    elif value in (0, 1, 2):  # 8, 16, 32-bit integer
        _skip(handle, 1 << value)
    elif value == 3:  # LZF: compressed length, uncompressed length, data
        compressed, _special = _length(handle)
        _length(handle)
        _skip(handle, compressed)
    else:
        raise RdbFormatError("unknown string encoding %d" % value)


def _skip(handle, count):
    if count:
        handle.seek(count - 1, 1)
        _read(handle, 1)  # the last byte must exist: a short file is not skipped over silently


def _skip_module_aux(handle):
    _length(handle)  # module id
    when_opcode, _special = _length(handle)
    if when_opcode != MODULE_UINT:
        raise RdbFormatError("module AUX data without its 'when' field")
    _length(handle)
    while True:
        opcode, _special = _length(handle)
        if opcode == MODULE_EOF:
            return
        if opcode in (MODULE_SINT, MODULE_UINT):
            _length(handle)
        elif opcode == MODULE_FLOAT:
            _skip(handle, 4)
        elif opcode == MODULE_DOUBLE:
            _skip(handle, 8)
        elif opcode == MODULE_STRING:
            _skip_string(handle)
        else:
            raise RdbFormatError("unknown module value type %d" % opcode)


def has_functions(path):
    """True when the RDB at `path` holds Redis Functions libraries. Raises RdbFormatError when its preamble
    does not parse."""
    with open(path, "rb") as handle:
        header = _read(handle, 9)
        if header[:5] != b"REDIS":
            raise RdbFormatError("no RDB header")
        while True:
            opcode = handle.read(1)
            if not opcode:
                return False
            if opcode[0] == OP_AUX:
                _skip_string(handle)
                _skip_string(handle)
            elif opcode[0] == OP_MODULE_AUX:
                _skip_module_aux(handle)
            else:
                return opcode[0] in (OP_FUNCTION2, OP_FUNCTION_PRE_GA)
