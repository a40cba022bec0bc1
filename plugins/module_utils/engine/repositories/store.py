"""The written interface of a store (one place sets are kept: a local directory, an SFTP or FTP server, an S3
bucket), the writer of one set, and what a listing says about a set (StoredSet).

A store keeps each set at <root>/<job>/<set id>/ as exactly one data object (data.<ext>[.zst|.gz][.age]) and
manifest.json, the manifest written last: its presence means "complete". A job's Repository (repository.py)
holds its stores in read order; the pipeline (backup, restore, catalog, retention, verify) calls only the
methods below. To add a store (say Azure Blob): subclass Store and SetWriter in a module of this package, and
construct it in Repository.from_options.

Everything read from a store is untrusted: the catalog checks each manifest (manifest.check_belongs) and the
restore checks the data's sha256 and size against it. A store's part is to never hand out anything but the
members of the set it was asked for.
"""


class Store(object):
    """One place sets are kept. Subclasses set `name` and implement every method.

    Listing and reading (list_sets, read_manifest, open_data) may be called from several threads at once (the
    catalog reads manifests in a pool), and between a preflight and a write from another thread."""

    # Short, stable name of the kind of store ("local", "sftp", "ftp", "s3"): the key of results' `location`
    # and of BackupSet.stored; one store of each name per repository.
    name = None

    def describe(self):
        """Where the store is, for messages and results (a path or URL), never a secret."""
        raise NotImplementedError

    def set_location(self, job, set_id):
        """Where set `set_id` of `job` is or would be (a path, or a URL ending in /); no I/O."""
        raise NotImplementedError

    def preflight(self):
        """Check, before anything is written, that the store can be written (reachable, exists, writable).
        Raises SinkError when it cannot (the backup goes on with the other stores) or ConfigError for a bad
        option. Runs in a daemon thread while the source is checked."""
        raise NotImplementedError

    def begin_set(self, job, set_id, data_name):
        """Start writing a new set (a fresh set id, made by the pipeline for this run): returns its SetWriter.
        Nothing of it counts as complete before SetWriter.commit. Raises SinkError."""
        raise NotImplementedError

    def list_sets(self, job):
        """Every set directory of `job` as StoredSet, complete or not, in any order; [] when the job has none.
        Only directories whose name is a set id count (not symlinks to one: the local store refuses a symlinked
        job directory with IntegrityError and sizes members with lstat). A listing reads no manifest. Raises
        SinkError when the store cannot be listed."""
        raise NotImplementedError

    def read_manifest(self, job, set_id):
        """The set's manifest as a dict, read with at most manifest.MAX_BYTES and parsed by manifest.loads
        (IntegrityError when it is not a manifest). NotFoundError when the set has none (incomplete)."""
        raise NotImplementedError

    def open_data(self, job, set_id, data_name):
        """A binary reader (read(size) -> bytes, b"" at the end; close()) over member `data_name` of the set.
        Reaches only <root>/<job>/<set id>/<data_name>, nothing else; the local store opens it with no
        symlink followed and only as a regular file (IntegrityError otherwise); remote servers resolve their own
        paths, and the sha256 check of the restore stands behind every store. NotFoundError when missing,
        SinkError when the store fails. The caller checks `data_name` against the manifest
        (naming.data_name_problem) before calling."""
        raise NotImplementedError

    def delete_set(self, job, set_id):
        """Remove every object of the set. Remote stores remove the manifest first, so a half-removed set never
        looks complete (for the local store, retention unlinks the manifest before calling this)."""
        raise NotImplementedError


class SetWriter(object):
    """One set being written (Store.begin_set). The pipeline calls write for every chunk of the stored data
    (already compressed, encrypted and hashed), then commit once, or abort."""

    def write(self, chunk):
        """Append bytes to the data object; SinkError when the store fails (the pipeline then aborts)."""
        raise NotImplementedError

    def commit(self, manifest_bytes):
        """Finish the data object (durable, all of it acknowledged), then make manifest.json appear at once
        (rename or single PUT), last: only then is the set complete. SinkError on failure (then aborted)."""
        raise NotImplementedError

    def abort(self):
        """Remove whatever this writer made, so nothing half-written looks like a set. Never raises."""
        raise NotImplementedError


class StoredSet(object):
    """One set as found in one repository: complete when its manifest.json is present."""

    __slots__ = ("set_id", "complete", "data_name", "size", "modified", "location")

    def __init__(self, set_id, complete, data_name, size, modified, location):
        self.set_id = set_id
        self.complete = complete
        self.data_name = data_name
        self.size = size
        self.modified = modified  # aware datetime of the newest object, for the leftover grace period
        self.location = location

    def __repr__(self):
        return "StoredSet(%s, complete=%s)" % (self.set_id, self.complete)
