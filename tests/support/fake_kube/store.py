"""The fake Kubernetes API's object store: objects by (apiVersion, kind, namespace, name), written as an API server
writes them. Server fields (uid, resourceVersion, which a no-op write keeps, creationTimestamp, generation, bumped
when anything but metadata and status changes), defaults on every write, status kept across writes to the main
resource, a Job's selector and pod labels and its pod template immutable, objects only in a Namespace that exists,
409 AlreadyExists and Conflict, dryRun=All answers that store nothing, DELETE with propagationPolicy (Orphan, the
batch/v1 default, drops the owner references; Foreground keeps the owner until its dependents are gone). Every
write of a workload's replicas and every Job creation is recorded (`history`, `jobs_created`)."""

import copy
import threading
import time
import uuid

from .defaults import defaulted
from .errors import ApiError
from .resources import GENERATION_KINDS, RESOURCES, WORKLOADS, now


class ObjectStore(object):
    """The objects, their pods' logs and the records of writes; every access under `lock`."""

    def __init__(self):
        self.lock = threading.RLock()
        self.objects = {}
        self.logs = {}
        self.history = []        # (time, kind, namespace, name, spec.replicas) on every write of a workload
        self.jobs_created = []   # {"namespace", "name", "workloads": {(kind, namespace, name): (spec, status)}}
        self._version = 0
        self.kinds = {}    # (group, version, plural) -> (kind, namespaced, subresources)
        self.by_kind = {}  # kind -> (plural, namespaced)
        for (group, version), resources in RESOURCES.items():
            for plural, kind, namespaced, subresources in resources:
                self.kinds[(group, version, plural)] = (kind, namespaced, subresources)
                self.by_kind[kind] = (plural, namespaced)
        for name in ("default", "kube-system"):
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def _key(self, obj):
        return (obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace") or "", obj["metadata"]["name"])

    def get(self, apiversion, kind, namespace, name):
        """A copy of the object, or None."""
        with self.lock:
            found = self.objects.get((apiversion, kind, namespace or "", name))
            return copy.deepcopy(found) if found else None

    def list(self, apiversion=None, kind=None, namespace=None):
        with self.lock:
            return [copy.deepcopy(obj) for key, obj in sorted(self.objects.items())
                    if (apiversion is None or key[0] == apiversion) and (kind is None or key[1] == kind)
                    and (namespace is None or key[2] == namespace)]

    def _plural(self, kind):
        return self.by_kind[kind][0]

    def _not_found(self, kind, name):
        return ApiError(404, "NotFound", '%s "%s" not found' % (self._plural(kind), name),
                        {"name": name, "kind": self._plural(kind)})

    def _bump(self, obj):
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)

    def _record(self, obj):
        if obj["kind"] in WORKLOADS:
            meta = obj["metadata"]
            self.history.append((time.monotonic(), obj["kind"], meta.get("namespace"), meta["name"],
                                 obj["spec"].get("replicas")))

    def create(self, obj, namespace=None, dry_run=False):
        """POST: the stored object (server fields set, defaults filled in, a Job's controller started); with
        dry_run (dryRun=All) the same answer, and nothing stored or started."""
        with self.lock:
            obj = defaulted(obj)
            meta = obj.setdefault("metadata", {})
            namespaced = self.by_kind[obj["kind"]][1]
            if namespace and meta.get("namespace", namespace) != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                               "namespace sent on the request")
            if namespaced:
                meta["namespace"] = namespace or meta.get("namespace") or "default"
                if not self.get("v1", "Namespace", "", meta["namespace"]):
                    raise ApiError(404, "NotFound", 'namespaces "%s" not found' % meta["namespace"],
                                   {"name": meta["namespace"], "kind": "namespaces"})
            else:
                meta.pop("namespace", None)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            if not meta.get("name"):
                raise ApiError(422, "Invalid", "%s is invalid: metadata.name: Required value" % obj["kind"])
            if self._key(obj) in self.objects:
                raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (self._plural(obj["kind"]),
                                                                                 meta["name"]),
                               {"name": meta["name"], "kind": self._plural(obj["kind"])})
            for field in ("resourceVersion", "deletionTimestamp", "generation"):
                meta.pop(field, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            if obj["kind"] in GENERATION_KINDS:
                meta["generation"] = 1
            if obj["kind"] == "Job":
                self._job_admission(obj)
            if obj["kind"] == "Namespace":
                obj["status"] = {"phase": "Active"}
            if dry_run:
                return obj
            self._bump(obj)
            self.objects[self._key(obj)] = obj
            self._record(obj)
            if obj["kind"] == "Job":
                self.jobs_created.append({"namespace": meta["namespace"], "name": meta["name"],
                                          "time": time.monotonic(), "workloads": self._workload_replicas()})
                self._job_created(self._key(obj), meta["uid"])
            return copy.deepcopy(obj)

    def _job_created(self, key, uid):
        """Called (under the lock) once a Job is stored: the Job controller (jobs.py) starts its pod."""

    def _job_admission(self, job):
        uid, name, spec = job["metadata"]["uid"], job["metadata"]["name"], job["spec"]
        if not spec.get("manualSelector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
            labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                           "controller-uid": uid, "job-name": name})
        job["metadata"].setdefault("labels", dict(spec["template"]["metadata"].get("labels") or {}))

    def _workload_replicas(self):
        return {(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]):
                (obj["spec"].get("replicas"), (obj.get("status") or {}).get("replicas"))
                for obj in self.objects.values() if obj["kind"] in WORKLOADS}

    def update(self, key, new, resource_version=None, dry_run=False):
        """Store `new` in place of the object at `key` (PUT and PATCH): server-owned fields are kept; with dry_run
        the answer only."""
        with self.lock:
            old = self.objects.get(key)
            if old is None:
                raise self._not_found(key[1], key[3])
            if resource_version and resource_version != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "Operation cannot be fulfilled on %s \"%s\": the object has been "
                               "modified; please apply your changes to the latest version and try again"
                               % (self._plural(key[1]), key[3]), {"name": key[3], "kind": self._plural(key[1])})
            new = defaulted(dict(new, apiVersion=key[0], kind=key[1]))  # defaults apply on every write
            meta = new.setdefault("metadata", {})
            for field in ("uid", "creationTimestamp", "namespace", "name", "generation", "deletionTimestamp"):
                if field in old["metadata"]:
                    meta[field] = old["metadata"][field]
                else:
                    meta.pop(field, None)
            if "status" in old or key[1] in GENERATION_KINDS + ("Pod",):
                new["status"] = copy.deepcopy(old.get("status"))
                if new["status"] is None:
                    new.pop("status")
            if key[1] == "Job" and new["spec"].get("template") != old["spec"].get("template"):
                raise ApiError(422, "Invalid", 'Job.batch "%s" is invalid: spec.template: Invalid value: '
                               'field is immutable' % key[3])
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            if new == old:
                return copy.deepcopy(old)  # a no-op write keeps the resourceVersion, as etcd is not written
            if key[1] in GENERATION_KINDS and {k: v for k, v in new.items() if k not in ("metadata", "status")} != {
                    k: v for k, v in old.items() if k not in ("metadata", "status")}:
                meta["generation"] = old["metadata"].get("generation", 1) + 1
            if dry_run:
                return new
            self._bump(new)
            self.objects[key] = new
            self._record(new)
            return copy.deepcopy(new)

    def set_status(self, key, status):
        with self.lock:
            obj = self.objects.get(key)
            if obj is not None:
                obj["status"] = status
                self._bump(obj)

    def delete(self, key, policy=None, dry_run=False):
        """DELETE: Status Success (or the object still there when it waits on its dependents); with dry_run the
        answer only."""
        with self.lock:
            obj = self.objects.get(key)
            if obj is None:
                raise self._not_found(key[1], key[3])
            policy = policy or ("Orphan" if key[1] == "Job" else "Background")  # batch/v1 Jobs orphan by default
            uid = obj["metadata"]["uid"]
            if dry_run:
                return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": key[3], "kind": self._plural(key[1]), "uid": uid}}
            if policy == "Orphan":
                for dependent in self._dependents(uid):
                    dependent["metadata"]["ownerReferences"] = [
                        ref for ref in dependent["metadata"]["ownerReferences"] if ref["uid"] != uid]
            if policy == "Foreground" and self._dependents(uid):
                obj["metadata"]["deletionTimestamp"] = now()
                obj["metadata"].setdefault("finalizers", []).append("foregroundDeletion")
                self._bump(obj)
                return copy.deepcopy(obj)
            del self.objects[key]
            if key[1] == "Namespace":
                for other in [k for k in self.objects if k[2] == key[3]]:
                    del self.objects[other]
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": key[3], "kind": self._plural(key[1]), "uid": uid}}

    def _dependents(self, uid):
        return [obj for obj in self.objects.values()
                if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])]
