"""The tar stream of a directory set, as both sides see it: a POSIX tar (pax, UTF-8 names with surrogateescape)
written in blocks and records like tarfile's stream mode, members built from lstat results (mode, owner names,
mtime, symlink target), the depth limit both dir_snapshot and dir_restore enforce, and the capped lists of names
a manifest or result reports."""

import grp
import pwd
import stat
import tarfile

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
NUL = b"\0"
LIST_LIMIT = 50  # names kept in the manifest for changed/vanished/skipped entries
TAR_FORMAT = tarfile.PAX_FORMAT
ENCODING = "utf-8"
ERRORS = "surrogateescape"
MAX_DEPTH = 512  # levels below the directory; deeper members are refused and dir_snapshot refuses deeper trees


_users = {}
_groups = {}


def _user(uid):
    if uid not in _users:
        try:
            _users[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            _users[uid] = ""
    return _users[uid]


def _group(gid):
    if gid not in _groups:
        try:
            _groups[gid] = grp.getgrgid(gid).gr_name
        except KeyError:
            _groups[gid] = ""
    return _groups[gid]


def tarinfo_for(relpath, st, linkname=None, size=None):
    info = tarfile.TarInfo(relpath or ".")
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = st.st_uid
    info.gid = st.st_gid
    info.uname = _user(st.st_uid)
    info.gname = _group(st.st_gid)
    info.mtime = int(st.st_mtime)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = linkname
    else:
        info.type = tarfile.REGTYPE
        info.size = st.st_size if size is None else size
    return info


def header_bytes(info):
    return info.tobuf(TAR_FORMAT, ENCODING, ERRORS)


def padding(size):
    return NUL * ((BLOCK - size % BLOCK) % BLOCK)


def end_of_archive(offset):
    """Two zero blocks, then zeros up to a whole record, as tarfile's stream mode writes."""
    tail = NUL * (2 * BLOCK)
    remainder = (offset + len(tail)) % RECORD
    return tail + (NUL * (RECORD - remainder) if remainder else b"")


def note_path(items, relpath):
    """Append `relpath` ('.' for the root) to a list the manifest or result reports, up to LIST_LIMIT names."""
    if len(items) < LIST_LIMIT:
        items.append(relpath or ".")
