"""Reading a set back: choose the repository, download, check sha256 while streaming, decrypt, decompress."""

import contextlib

from .catalog import locate
from ..core.codecs import decompress_reader, decrypt_reader
from ..core.errors import ConfigError, IntegrityError, LifeboatError
from ..core.naming import data_name_problem
from ..core.streams import CHUNK, HashingReader, iter_chunks, pump, report_spliced, splice_fd


def set_result(repository, job, backup_set):
    """The `backup` value restore modules return: same shape as a backup module's, plus `skipped` (damaged sets
    passed over to choose it, see catalog.select) when there were any: module_options.run_module and the runner
    move it to the top level of their result and warn about each."""
    manifest = backup_set.manifest
    result = {
        "id": backup_set.set_id,
        "job": job,
        "kind": manifest["kind"],
        "location": {name: stored.location for name, stored in backup_set.stored.items() if stored.complete},
        "size": manifest["size"],
        "sha256": manifest["sha256"],
        "manifest": manifest,
    }
    if backup_set.skipped:
        result["skipped"] = list(backup_set.skipped)
    return result


def find_set(repository, job, kind, backup="latest", before=None):
    backup_set = locate(repository, job, backup, before)
    if backup_set.manifest["kind"] != kind:
        raise ConfigError("set %s of job %s is a %s backup, not %s: check job" % (
            backup_set.set_id, job, backup_set.manifest["kind"], kind))
    return backup_set


class VerifiedReader(object):
    """Decoded data of a set. At the end (or when decoding fails) the stored bytes are checked
    against the manifest: a mismatch raises IntegrityError('sha256 mismatch ...')."""

    def __init__(self, decoded, stored, manifest, where):
        self._decoded = decoded
        self._stored = stored
        self._manifest = manifest
        self._where = where
        self.raw_bytes = 0
        self.checked = False
        self._error = None

    def read(self, size=CHUNK):
        if self._error is not None:
            raise self._error  # the first verdict stands: later reads never replace it with a codec error
        try:
            return self._read(size)
        except LifeboatError as exc:
            self._error = exc
            raise

    def splice_fd(self):
        """The decoder's output may be spliced past this reader: `spliced` counts it, and the checks still run
        on the read that finds the end (streams.pump always makes it)."""
        return None if self._error is not None else splice_fd(self._decoded)

    def spliced(self, count):
        self.raw_bytes += count
        report_spliced(self._decoded, count)

    def _read(self, size):
        try:
            data = self._decoded.read(size)
        except LifeboatError:
            self._check_stored(draining=True)
            raise
        if data:
            self.raw_bytes += len(data)
            return data
        self._check_stored()
        if self._manifest.get("raw_size") is not None and self.raw_bytes != self._manifest["raw_size"]:
            raise IntegrityError("set %s decodes to %d bytes but its manifest says %d: the artifact is damaged; "
                                 "restore another set" % (self._where, self.raw_bytes, self._manifest["raw_size"]))
        return b""

    def _check_stored(self, draining=False):
        if self.checked:
            return
        if draining:
            try:
                for _chunk in iter_chunks(self._stored):
                    pass
            except LifeboatError:
                return
        self.checked = True
        expected = self._manifest["size"]
        if self._stored.hexdigest() != self._manifest["sha256"] or self._stored.bytes != expected:
            # Neither the digest nor the size of what was read is shown: the expected values come from the
            # manifest, what was read is only compared (no oracle on any file's content, even one the layout
            # checks would never let a restore open).
            if self._stored.bytes < expected:
                how = "shorter than"
            elif self._stored.bytes > expected:
                how = "longer than"
            else:
                how = "the same size as"
            raise IntegrityError(
                "sha256 mismatch for %s: the stored data is %s the manifest's %d bytes and does not have its sha256 "
                "%s; the artifact is corrupted or truncated: nothing was changed, restore another set "
                "(backup: <id>)" % (self._where, how, expected, self._manifest["sha256"]))


@contextlib.contextmanager
def open_set(repository, job, backup_set, identity_file=None):
    """Yield a VerifiedReader over the set's raw (decoded) data, from the first repository that holds it."""
    names = backup_set.complete_in()
    store = [s for s in repository.stores if s.name in names][0]
    manifest = backup_set.manifest
    where = store.set_location(job, backup_set.set_id)
    # list_sets checked the manifest; checked again here, next to the open, so no path ever reaches a store
    # that is not a data object name of this set.
    problem = data_name_problem(manifest["data"], manifest["compression"]["algorithm"],
                                bool(manifest.get("encryption")))
    if problem:
        raise IntegrityError("set %s cannot be read: its manifest is corrupted (%s); restore another set"
                             % (where, problem))
    body = store.open_data(job, backup_set.set_id, manifest["data"])
    with contextlib.ExitStack() as stack:
        stack.callback(body.close)
        stored = HashingReader(body)
        stream = stored
        if manifest.get("encryption"):
            stream = decrypt_reader(stream, identity_file, manifest["encryption"].get("recipients"))
            stack.callback(stream.close)
        stream = decompress_reader(stream, manifest["compression"]["algorithm"])
        if hasattr(stream, "close"):
            stack.callback(stream.close)
        yield VerifiedReader(stream, stored, manifest, where)


def fetch_to_file(repository, job, backup_set, handle, identity_file=None):
    """Write the set's raw data into an open binary file; returns bytes written. Raises on any mismatch.
    The decompressor's output is spliced into the file (the sha256 is of the stored bytes, read before it)."""
    with open_set(repository, job, backup_set, identity_file) as reader:
        return pump(reader, handle)
