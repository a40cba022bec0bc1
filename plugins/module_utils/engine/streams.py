"""Small readers that pipeline stages are made of. Every stage has `read(size)` -> bytes, b'' at end."""

import hashlib

CHUNK = 1024 * 1024


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
    """Passes data through, counting bytes."""

    def __init__(self, raw):
        self._raw = raw
        self.bytes = 0

    def read(self, size=CHUNK):
        data = self._raw.read(size)
        self.bytes += len(data)
        return data


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


def copy_stream(reader, writer, size=CHUNK):
    total = 0
    for chunk in iter_chunks(reader, size):
        writer.write(chunk)
        total += len(chunk)
    return total
