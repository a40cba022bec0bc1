"""Crafted directory sets: a real tar of arbitrary members stored as a real set (data + manifest with its sha256,
through the engine's own backup path), i.e. what whoever can write to a repository could serve to a restore.
Only the restore's own checks stand between such a set and the host."""

import contextlib
import io
import tarfile

from engine.pipeline.backup import run_backup
from engine.repositories.repository import Repository


class BytesSource(object):
    """A source of `kind` whose data is exactly `data` and whose manifest records `verification` and `source` (the
    source description): what a repository writer could store, with a correct sha256, through the engine itself."""

    def __init__(self, kind, extension, data, verification=None, source=None):
        self.kind = kind
        self.extension = extension
        self.data = data
        self._verification = verification or {}
        self._source = source or {"path": "crafted"}

    def check(self):
        pass

    def describe(self):
        return dict(self._source)

    def tools(self):
        return {}

    def verification(self):
        return dict(self._verification)

    @contextlib.contextmanager
    def open(self):
        yield io.BytesIO(self.data)


def tar_bytes(members):
    """A tar stream (pax) of exactly `members`: (TarInfo, payload or None) pairs, as `member` makes them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, payload in members:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


class CraftedSource(BytesSource):
    """A 'directory' source whose archive is exactly `members` and whose manifest verification is `verification`."""

    def __init__(self, members, verification=None, kind="directory", source=None):
        super(CraftedSource, self).__init__(kind, "tar", tar_bytes(members), verification, source)


def member(name, payload=b"evil", kind=tarfile.REGTYPE, linkname="", mode=None, uid=0, mtime=0):
    """One (TarInfo, payload) pair; uname/gname stay empty, so a restore as root uses `uid` as owner and group."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode if mode is not None else (0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.uid = info.gid = uid
    info.mtime = mtime
    if kind == tarfile.REGTYPE:
        info.size = len(payload)
        return info, payload
    return info, None


def crafted_set(repository_dir, members, verification=None, job="crafted"):
    """Store `members` as a complete set of `job` in the local repository `repository_dir`; returns the Repository."""
    repository = Repository.from_options(dest=str(repository_dir))
    run_backup(CraftedSource(members, verification), repository, job)
    return repository
