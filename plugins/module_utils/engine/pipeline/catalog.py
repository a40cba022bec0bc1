"""Listing the sets of a job across repositories and choosing one (latest, by id, before a time).

A set whose manifest exists but cannot be used (not JSON, a field out of its type or range, a data name outside
the set layout, the id/job of another set, or dated more than manifest.FUTURE_TOLERANCE after this host's clock)
is INVALID: damaged. Damage is an alarm. `latest` and `before`
refuse to silently choose an older set past a damaged one that may be newer, unless the caller allows it
(skip_damaged); then the chosen set lists what was skipped and why."""

import posixpath
from concurrent.futures import ThreadPoolExecutor

from ..core import manifest as manifest_mod
from ..core.errors import ConfigError, IntegrityError, NotFoundError
from ..core.naming import MANIFEST_NAME, is_set_id, parse_time, set_id_time, utcnow, validate_job

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
        self.skipped = []  # damaged sets passed over to choose this one (select with skip_damaged)

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
    validate_job(job)
    sets = {}
    for store in repository.stores:
        for stored in store.list_sets(job):
            sets.setdefault(stored.set_id, BackupSet(stored.set_id)).stored[store.name] = stored
    if read_manifests:
        now = utcnow()
        todo = []
        for backup_set in sets.values():
            names = backup_set.complete_in()
            if names:
                store = [s for s in repository.stores if s.name == names[0]][0]
                todo.append((backup_set, store))

        def load(item):
            backup_set, store = item
            try:
                document = store.read_manifest(job, backup_set.set_id)
                where = _manifest_where(store, job, backup_set)
                manifest_mod.check_belongs(document, job, backup_set.set_id, where)
                manifest_mod.check_not_future(document, where, now)
                backup_set.manifest = document
            except (IntegrityError, NotFoundError) as exc:
                backup_set.error = exc.msg
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(load, todo))
    return sorted(sets.values(), key=_sort_key, reverse=True)


def _manifest_where(store, job, backup_set):
    location = store.set_location(job, backup_set.set_id)
    return posixpath.join(location, MANIFEST_NAME) if "://" in location else "%s/%s" % (location, MANIFEST_NAME)


def _sort_key(backup_set):
    moment = backup_set.finished or backup_set.started
    return (moment, backup_set.set_id)


def _may_be_newer(damaged, chosen, limit):
    """Whether a damaged set could be the one `latest`/`before` means. Its finished time cannot be known; its
    start time (the set id) bounds it from below: started after the limit, it finished after it too; started
    before the chosen set, it is older (runs of a job do not overlap)."""
    if limit is not None and damaged.started > limit:
        return False
    return chosen is None or damaged.started >= chosen.started


def _describe(damaged):
    return "; ".join("%s: %s" % (s.set_id, s.error) for s in damaged)


def select(sets, job, where, backup="latest", before=None, skip_damaged=False):
    """Pick the set to restore. `sets` comes from list_sets; `where` names the repositories for messages.

    A damaged (invalid) set that may be newer than the choice fails the selection (IntegrityError naming it),
    unless skip_damaged: then the choice's `skipped` lists it. A set id chosen explicitly is never skipped."""
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
    limit = parse_time(before) if before else None
    complete = [s for s in sets if s.status == COMPLETE]
    eligible = [s for s in complete if limit is None or s.finished <= limit]
    chosen = max(eligible, key=_sort_key) if eligible else None
    damaged = sorted((s for s in sets if s.status == INVALID and _may_be_newer(s, chosen, limit)),
                     key=_sort_key, reverse=True)
    skipped = [{"id": s.set_id, "error": s.error} for s in damaged]
    if damaged and not skip_damaged:
        scope = " finished at or before %s" % limit.isoformat() if limit else ""
        if chosen is None:
            found = "there is no intact set%s to fall back to" % scope
        else:
            found = "the newest intact set%s is %s, so restoring it would silently go back further" % (
                scope, chosen.set_id)
        raise IntegrityError(
            "damaged backup set(s) of job %s in %s: %s. A damaged set is an alarm (a failed disk, a broken upload or "
            "tampering): %s. Nothing was changed. Inspect it (lifeboat.backup.backup_catalog), choose a set "
            "explicitly (backup: <id>), or set skip_damaged: true to fall back past damaged sets"
            % (job, where, _describe(damaged), found), damaged=skipped)
    if chosen is None:
        note = " (damaged sets skipped: %s)" % _describe(damaged) if damaged else ""
        if not complete:
            raise NotFoundError("no complete backup set for job %s in %s%s; run a backup first, or check job, dest "
                                "and s3.prefix" % (job, where, note))
        oldest = min(complete, key=_sort_key)
        raise NotFoundError("no complete set of job %s finished at or before %s; the oldest finished at %s%s"
                            % (job, limit.isoformat(), oldest.manifest["finished"], note))
    chosen.skipped = skipped
    return chosen


def locate(repository, job, backup="latest", before=None, skip_damaged=None):
    """List and select in one call; raises NotFoundError with the repositories named. skip_damaged defaults to
    the repository's policy (Repository.skip_damaged, set from the restore option of that name)."""
    if skip_damaged is None:
        skip_damaged = getattr(repository, "skip_damaged", False)
    sets = list_sets(repository, job)
    return select(sets, job, repository.describe(), backup, before, skip_damaged)
