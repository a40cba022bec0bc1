"""Listing the sets of a job across repositories and choosing one (latest, by id, before a time)."""

from concurrent.futures import ThreadPoolExecutor

from .errors import ConfigError, IntegrityError, LifeboatError, NotFoundError
from .naming import is_set_id, parse_time, set_id_time

COMPLETE = "complete"
INCOMPLETE = "incomplete"
INVALID = "invalid"


class BackupSet(object):
    """One set id, merged over every repository that holds it."""

    def __init__(self, set_id):
        self.set_id = set_id
        self.stored = {}  # repository name -> StoredSet
        self.manifest = None
        self.error = None

    @property
    def status(self):
        if self.manifest is not None:
            return COMPLETE
        return INVALID if self.error else INCOMPLETE

    @property
    def started(self):
        return set_id_time(self.set_id)

    @property
    def finished(self):
        return parse_time(self.manifest["finished"]) if self.manifest else None

    def complete_in(self):
        return [name for name, stored in self.stored.items() if stored.complete]

    def to_dict(self):
        manifest = self.manifest or {}
        entry = {
            "id": self.set_id,
            "status": self.status,
            "kind": manifest.get("kind"),
            "started": manifest.get("started") or self.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finished": manifest.get("finished"),
            "size": manifest.get("size", max([s.size or 0 for s in self.stored.values()] or [0])),
            "raw_size": manifest.get("raw_size"),
            "sha256": manifest.get("sha256"),
            "encrypted": bool(manifest.get("encryption")),
            "verification": manifest.get("verification", {}),
            "tags": manifest.get("tags", {}),
            "location": {name: stored.location for name, stored in self.stored.items()},
            "complete_in": sorted(self.complete_in()),
        }
        if self.error:
            entry["error"] = self.error
        return entry


def list_sets(repository, job, read_manifests=True):
    """Every set of `job`, newest first (by finished time, else start time)."""
    sets = {}
    for store in repository.stores:
        for stored in store.list_sets(job):
            sets.setdefault(stored.set_id, BackupSet(stored.set_id)).stored[store.name] = stored
    if read_manifests:
        todo = []
        for backup_set in sets.values():
            names = backup_set.complete_in()
            if names:
                store = [s for s in repository.stores if s.name == names[0]][0]
                todo.append((backup_set, store))

        def load(item):
            backup_set, store = item
            try:
                backup_set.manifest = store.read_manifest(job, backup_set.set_id)
            except (IntegrityError, NotFoundError) as exc:
                backup_set.error = exc.msg
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(load, todo))
    return sorted(sets.values(), key=_sort_key, reverse=True)


def _sort_key(backup_set):
    moment = backup_set.finished or backup_set.started
    return (moment, backup_set.set_id)


def select(sets, job, where, backup="latest", before=None):
    """Pick the set to restore. `sets` comes from list_sets; `where` names the repositories for messages."""
    backup = backup or "latest"
    if backup != "latest":
        if before:
            raise ConfigError("use either backup (a set id) or before (a time), not both")
        if not is_set_id(backup):
            set_id_time(backup)  # raises the explanatory ConfigError
        for backup_set in sets:
            if backup_set.set_id == backup:
                if backup_set.status == COMPLETE:
                    return backup_set
                if backup_set.status == INVALID:
                    raise IntegrityError("set %s of job %s cannot be used: %s" % (backup, job, backup_set.error))
                raise NotFoundError("set %s of job %s is incomplete (no manifest: the run that made it failed "
                                    "or is still running); choose another set" % (backup, job))
        raise NotFoundError("no set %s for job %s in %s; list the sets with lifeboat.backup.backup_catalog"
                            % (backup, job, where))
    complete = [s for s in sets if s.status == COMPLETE]
    if not complete:
        raise NotFoundError("no complete backup set for job %s in %s; run a backup first, or check job, dest "
                            "and s3.prefix" % (job, where))
    if before:
        limit = parse_time(before)
        eligible = [s for s in complete if s.finished <= limit]
        if not eligible:
            oldest = min(complete, key=_sort_key)
            raise NotFoundError("no complete set of job %s finished at or before %s; the oldest finished at %s"
                                % (job, limit.isoformat(), oldest.manifest["finished"]))
        complete = eligible
    return max(complete, key=_sort_key)


def locate(repository, job, backup="latest", before=None):
    """List and select in one call; raises NotFoundError with the repositories named."""
    try:
        sets = list_sets(repository, job)
    except LifeboatError:
        raise
    return select(sets, job, repository.describe(), backup, before)
