"""Small readers that pipeline stages are made of. Every stage has `read(size)` -> bytes, b'' at end.

A reader may also offer `splice_fd()`: the file descriptor its next bytes can be taken from directly,
so that `pump` moves them between a file or pipe and a tool's stdin inside the kernel (Linux splice)
instead of copying every byte through Python. Readers that must see the bytes (hashing) offer none.
"""

import errno
import hashlib
import io
import os

try:
    import fcntl
except ImportError:  # not Linux/Unix: no pipe resizing
    fcntl = None

CHUNK = 1024 * 1024
PIPE_SIZE = 1024 * 1024  # Linux's default limit for unprivileged processes (/proc/sys/fs/pipe-max-size)
F_SETPIPE_SZ = 1031
HAS_SPLICE = hasattr(os, "splice")


def iter_chunks(reader, size=CHUNK):
    while True:
        chunk = reader.read(size)
        if not chunk:
            return
        yield chunk


class HashingReader(object):
    """Passes data through, counting bytes and computing sha256 as it streams."""

    def __init__(self, raw):
        self._raw = raw
        self.digest = hashlib.sha256()
        self.bytes = 0

    def read(self, size=CHUNK):
        data = self._raw.read(size)
        if data:
            self.digest.update(data)
            self.bytes += len(data)
        return data

    def hexdigest(self):
        return self.digest.hexdigest()


class CountingReader(object):
    """Passes data through, counting bytes (also those `pump` splices past it)."""

    def __init__(self, raw):
        self._raw = raw
        self.bytes = 0

    def read(self, size=CHUNK):
        data = self._raw.read(size)
        self.bytes += len(data)
        return data

    def splice_fd(self):
        return splice_fd(self._raw)

    def spliced(self, count):
        self.bytes += count
        report_spliced(self._raw, count)


class IterReader(object):
    """A reader over an iterator of byte chunks (for sources that produce chunks)."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size=CHUNK):
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return b""
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def write_all(handle, data):
    """Write all of `data` to an unbuffered file or pipe, which may take less than all in one write."""
    view = memoryview(data)
    while view:
        view = view[handle.write(view):]


def widen_pipe(fd, size=PIPE_SIZE):
    """Ask Linux for a larger pipe buffer: fewer wake-ups between a tool and its reader. Elsewhere, or when
    the limit is lower, the default stays and everything still works."""
    if fcntl is None:
        return
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except (OSError, ValueError):
        pass


def splice_fd(reader):
    """The descriptor the next bytes of `reader` can be moved from without Python seeing them, or None."""
    method = getattr(reader, "splice_fd", None)
    if method is not None:
        return method()
    if isinstance(reader, io.BufferedReader) and isinstance(reader.raw, io.FileIO):
        try:
            fd = reader.fileno()
            if reader.tell() == os.lseek(fd, 0, os.SEEK_CUR):  # nothing read ahead into Python's buffer
                return fd
        except (OSError, ValueError):
            return None
    return None


def report_spliced(reader, count):
    method = getattr(reader, "spliced", None)
    if method is not None:
        method(count)


def _splice_all(source, in_fd, out_fd, size):
    """Splice until end of input, reporting every move to `source` as it happens (so bytes moved before the
    reader hangs up still count); None when the kernel cannot splice these descriptors (nothing moved)."""
    total = 0
    while True:
        try:
            moved = os.splice(in_fd, out_fd, size)
        except OSError as exc:
            if total == 0 and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EBADF):
                return None
            raise
        if moved == 0:
            return total
        total += moved
        report_spliced(source, moved)


def _fileno(handle):
    """The descriptor behind a file object, or None (an in-memory buffer has none)."""
    try:
        return handle.fileno()
    except (AttributeError, io.UnsupportedOperation, ValueError):
        return None


def pump(source, out, size=CHUNK):
    """Copy everything `source` yields into the binary file `out`; returns the number of bytes.

    Bytes that come from a file or pipe and go to a pipe, or from a pipe to a file, are spliced by the
    kernel. The source is read once more at the end either way, so a tool behind it still gets its exit
    status checked."""
    total = 0
    out_fd = _fileno(out) if HAS_SPLICE else None
    can_splice = out_fd is not None
    while True:
        in_fd = splice_fd(source) if can_splice else None
        if in_fd is not None:
            out.flush()
            moved = _splice_all(source, in_fd, out_fd, size)
            if moved is None:
                can_splice = False  # these descriptors cannot be spliced: copy the rest, do not ask again
            else:
                total += moved
        chunk = source.read(size)
        if not chunk:
            return total
        out.write(chunk)
        total += len(chunk)
