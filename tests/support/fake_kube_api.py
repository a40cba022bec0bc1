"""A small fake Kubernetes API server for the tests of the kubernetes_schedule role and the kubernetes_restore
playbook: a threaded http.server on 127.0.0.1 speaking as much of the REST API as the `kubernetes` Python client
and kubernetes.core's modules use (k8s with apply, k8s_info, k8s_scale, k8s_log).

What it does like a real API server:
- discovery (/version, /api, /api/v1, /apis, /apis/<group>/<version>, with the scale, status and log subresources);
- GET, LIST (label and field selectors), POST, PUT, PATCH (merge-patch, strategic-merge-patch: lists of objects
  with a `name` merged by name, application/apply-patch+yaml: create or merge), DELETE with propagationPolicy
  (Orphan, the batch/v1 default, drops the owner references; Background deletes the dependents after a tick;
  Foreground keeps the owner, with deletionTimestamp and the foregroundDeletion finalizer, until they are gone);
- metadata: uid, resourceVersion (a no-op write keeps it), creationTimestamp, generation (workloads, Jobs, CronJobs:
  bumped when anything but metadata and status changes); status kept across writes to the main resource; Secret
  stringData folded into data; a Job's pod template immutable; objects only in a Namespace that exists;
- dryRun=All (what kubernetes.core's modules send in check mode): the answer of the write, nothing stored;
- 401, 404, 409 (AlreadyExists, Conflict), 415 and 422 answered with Status bodies;
- defaults on every write (`defaulted`): a few of the fields a real server fills in (CronJob suspend, pod template
  dnsPolicy, schedulerName, terminationGracePeriodSeconds, container terminationMessagePath...), so that apply
  idempotence is proven against an object that differs from the manifest;
- controllers: a StatefulSet's or Deployment's status follows spec.replicas one tick (0.2 s) later; a Job gets its
  selector and pod labels (controller-uid, job-name), then a worker thread creates its Pod (owner reference,
  labels), calls `job_runner(api, job, pod)` -> (exit status, log), records the log as the Pod's log and sets the
  Pod's phase and the Job's status (succeeded or failed, conditions), retrying up to backoffLimit.

What it does not do: RBAC (one bearer token grants everything), admission webhooks and policies, schema validation,
scheduling (no nodes, no resources, no affinity), CronJob schedules (see trigger_cronjob), activeDeadlineSeconds,
watches. Every write of a workload's replicas and every Job creation is recorded (`history`, `jobs_created`).
"""

import base64
import copy
import datetime
import http.server
import json
import os
import threading
import time
import urllib.parse
import uuid

import yaml

TICK = 0.2
# (group, version) -> (plural, kind, namespaced, subresources)
RESOURCES = {
    ("", "v1"): [("namespaces", "Namespace", False, ("status",)), ("secrets", "Secret", True, ()),
                 ("serviceaccounts", "ServiceAccount", True, ()),
                 ("persistentvolumeclaims", "PersistentVolumeClaim", True, ("status",)),
                 ("pods", "Pod", True, ("status", "log")), ("configmaps", "ConfigMap", True, ())],
    ("apps", "v1"): [("statefulsets", "StatefulSet", True, ("status", "scale")),
                     ("deployments", "Deployment", True, ("status", "scale"))],
    ("batch", "v1"): [("jobs", "Job", True, ("status",)), ("cronjobs", "CronJob", True, ("status",))],
}
GENERATION_KINDS = ("StatefulSet", "Deployment", "Job", "CronJob")
WORKLOADS = ("StatefulSet", "Deployment")


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_version(group, version):
    return "%s/%s" % (group, version) if group else version


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target, patch):
    """Strategic merge patch as far as pod templates need it: like merge_patch, but lists of objects that all
    carry a `name` are merged by name ($patch directives are dropped)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif (isinstance(value, list) and isinstance(result.get(key), list) and value
              and all(isinstance(item, dict) and "name" in item for item in value + result[key])):
            merged = [copy.deepcopy(item) for item in result[key]]
            for item in value:
                index = next((i for i, old in enumerate(merged) if old["name"] == item["name"]), None)
                if index is None:
                    merged.append(strategic_merge_patch({}, item))
                else:
                    merged[index] = strategic_merge_patch(merged[index], item)
            result[key] = merged
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def parse_selector(text):
    """A label selector as a list of (key, operator, values)."""
    terms, depth, current = [], 0, ""
    for char in text or "":
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    parsed = []
    for term in (t.strip() for t in terms if t.strip()):
        words = term.split()
        if len(words) >= 3 and words[1] in ("in", "notin"):
            values = " ".join(words[2:]).strip("()").split(",")
            parsed.append((words[0], words[1], [v.strip() for v in values]))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            parsed.append((key.strip(), "!=", [value.strip()]))
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            parsed.append((key.strip(), "=", [value.strip()]))
        elif term.startswith("!"):
            parsed.append((term[1:], "!", []))
        else:
            parsed.append((term, "exists", []))
    return parsed


def selector_matches(selector, labels):
    for key, operator, values in selector:
        present = key in labels
        if operator in ("=", "in") and (not present or labels[key] not in values):
            return False
        if operator in ("!=", "notin") and present and labels[key] in values:
            return False
        if (operator == "exists" and not present) or (operator == "!" and present):
            return False
    return True


def pod_defaults(spec):
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for container in spec.get("containers") or []:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", "IfNotPresent")
        container.setdefault("resources", {})
    for volume in spec.get("volumes") or []:
        if "secret" in volume:
            volume["secret"].setdefault("defaultMode", 420)


def defaulted(obj):
    """`obj` with the defaults the fake (like a real API server) fills in on create."""
    obj = copy.deepcopy(obj)
    kind, spec = obj.get("kind"), obj.get("spec")
    if kind == "Secret":
        obj.setdefault("type", "Opaque")
        for key, value in (obj.pop("stringData", None) or {}).items():
            obj.setdefault("data", {})[key] = base64.b64encode(value.encode("utf-8")).decode()
    elif kind == "CronJob":
        spec.setdefault("suspend", False)
        spec.setdefault("concurrencyPolicy", "Allow")
        pod_defaults(spec["jobTemplate"]["spec"]["template"].setdefault("spec", {}))
    elif kind == "Job":
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        pod_defaults(spec["template"].setdefault("spec", {}))
    elif kind in WORKLOADS:
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if kind == "StatefulSet":
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        else:
            spec.setdefault("strategy", {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
            spec.setdefault("progressDeadlineSeconds", 600)
        pod_defaults(spec["template"].setdefault("spec", {}))
    elif kind == "Pod":
        pod_defaults(spec)
    return obj


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self):
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": self.reason, "details": self.details, "code": self.code}


class FakeKubeApi(object):
    """The server and its store: objects by (apiVersion, kind, namespace, name)."""

    def __init__(self, workdir, job_runner=None, token=None):
        self.workdir = workdir
        self.job_runner = job_runner
        self.token = token or uuid.uuid4().hex
        self.lock = threading.RLock()
        self.objects = {}
        self.logs = {}
        self.history = []        # (time, kind, namespace, name, spec.replicas) on every write of a workload
        self.jobs_created = []   # {"namespace", "name", "workloads": {(kind, namespace, name): (spec, status)}}
        self.requests = []       # (method, path, content type)
        self.delete_options = []  # (path, propagation policy or None) of every DELETE
        self.dry_runs = []       # (method, path) of every request with dryRun=All (nothing stored)
        self._version = 0
        self._stop = threading.Event()
        self.kinds = {}    # (group, version, plural) -> (kind, namespaced, subresources)
        self.by_kind = {}  # kind -> (plural, namespaced)
        for (group, version), resources in RESOURCES.items():
            for plural, kind, namespaced, subresources in resources:
                self.kinds[(group, version, plural)] = (kind, namespaced, subresources)
                self.by_kind[kind] = (plural, namespaced)
        for name in ("default", "kube-system"):
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self):
                api.handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.threads = [threading.Thread(target=self.server.serve_forever, daemon=True),
                        threading.Thread(target=self._controllers, daemon=True)]
        for thread in self.threads:
            thread.start()
        self.kubeconfig = os.path.join(workdir, "kubeconfig")
        with open(os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "fake",
                            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                            "users": [{"name": "fake", "user": {"token": self.token}}],
                            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}, handle)

    def close(self):
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    # --- the store ----------------------------------------------------------------------------------------------

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
                self.jobs_created.append({"namespace": meta["namespace"], "name": meta["name"], "time": time.monotonic(),
                                          "workloads": self._workload_replicas()})
                threading.Thread(target=self._run_job, args=(self._key(obj), meta["uid"]), daemon=True).start()
            return copy.deepcopy(obj)

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

    # --- controllers --------------------------------------------------------------------------------------------

    def _controllers(self):
        while not self._stop.wait(TICK):
            with self.lock:
                self._garbage_collect()
                for key, obj in list(self.objects.items()):
                    if key[1] in WORKLOADS:
                        self._scale(key, obj)

    def _garbage_collect(self):
        """Background: objects whose owners are all gone go. Foreground: an owner goes once its dependents are
        gone, which go a tick before it."""
        uids = {obj["metadata"]["uid"] for obj in self.objects.values()}
        for key, obj in list(self.objects.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and not any(ref.get("uid") in uids for ref in refs):
                del self.objects[key]
        for key, obj in list(self.objects.items()):
            if obj["metadata"].get("deletionTimestamp") and not self._dependents(obj["metadata"]["uid"]):
                del self.objects[key]
        for obj in list(self.objects.values()):
            if obj["metadata"].get("deletionTimestamp"):
                for dependent in self._dependents(obj["metadata"]["uid"]):
                    self.objects.pop(self._key(dependent), None)

    def _scale(self, key, obj):
        replicas, generation = obj["spec"].get("replicas", 1), obj["metadata"].get("generation", 1)
        revision = "%s-%s" % (key[3], obj["metadata"]["uid"][:10])
        if key[1] == "StatefulSet":
            status = {"observedGeneration": generation, "replicas": replicas, "availableReplicas": replicas,
                      "currentRevision": revision, "updateRevision": revision, "collisionCount": 0}
            status.update({name: replicas for name in ("readyReplicas", "currentReplicas", "updatedReplicas")
                           if replicas})
        else:
            status = {"observedGeneration": generation}
            status.update({name: replicas for name in ("replicas", "readyReplicas", "availableReplicas",
                                                       "updatedReplicas") if replicas})
        if obj.get("status") != status:
            self.set_status(key, status)

    def _run_job(self, key, uid):
        time.sleep(TICK)
        attempts = 0
        while True:
            with self.lock:
                job = self.objects.get(key)
                if job is None or job["metadata"]["uid"] != uid or job["metadata"].get("deletionTimestamp"):
                    return
                job = copy.deepcopy(job)
                if attempts == 0:
                    self.set_status(key, {"startTime": now(), "active": 1, "ready": 0})
                template = job["spec"]["template"]
                pod = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "%s-%s" % (key[3], uuid.uuid4().hex[:5]), "namespace": key[2],
                                    "labels": dict(template["metadata"].get("labels") or {}),
                                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": key[3],
                                                         "uid": uid, "controller": True,
                                                         "blockOwnerDeletion": True}]},
                       "spec": dict(copy.deepcopy(template["spec"]), nodeName="fake-node")}
                pod = self.create(pod)
                pod_key = self._key(pod)
                self.set_status(pod_key, {"phase": "Running", "startTime": now(), "containerStatuses": [
                    {"name": c["name"], "ready": True, "restartCount": 0, "image": c.get("image"),
                     "state": {"running": {"startedAt": now()}}} for c in pod["spec"]["containers"]]})
            if self.job_runner is None:
                return  # no node: the Job stays active
            try:
                code, log = self.job_runner(self, job, pod)
            except Exception as exc:  # pylint: disable=broad-except
                code, log = 128, "fake kube api: the job runner failed: %r\n" % exc
            attempts += 1
            with self.lock:
                self.logs[pod_key[2:]] = log
                self.set_status(pod_key, {"phase": "Succeeded" if code == 0 else "Failed", "containerStatuses": [
                    {"name": c["name"], "ready": False, "restartCount": 0, "image": c.get("image"),
                     "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                              "finishedAt": now()}}} for c in pod["spec"]["containers"]]})
                current = self.objects.get(key)
                if current is None or current["metadata"]["uid"] != uid:
                    return
                status = dict(current.get("status") or {}, active=0, ready=0)
                if code == 0:
                    status.update(succeeded=1, completionTime=now(), conditions=[
                        {"type": "Complete", "status": "True", "lastTransitionTime": now()}])
                elif attempts > job["spec"].get("backoffLimit", 6):
                    status.update(failed=attempts, conditions=[
                        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                         "message": "Job has reached the specified backoff limit", "lastTransitionTime": now()}])
                else:
                    status.update(failed=attempts, active=1)
                for name in ("active", "ready"):
                    if not status[name]:
                        status.pop(name)
                self.set_status(key, status)
                if code == 0 or "conditions" in status:
                    return

    # --- HTTP ---------------------------------------------------------------------------------------------------

    def _discovery(self, parts):
        if parts == ["version"]:
            return {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "platform": "linux/amd64"}
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.url[len("http://"):]}]}
        if parts == ["apis"]:
            groups = []
            for group, version in sorted(RESOURCES):
                if group:
                    entry = {"groupVersion": api_version(group, version), "version": version}
                    groups.append({"name": group, "versions": [entry], "preferredVersion": dict(entry)})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        if (group, version) not in RESOURCES:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resources = []
        for plural, kind, namespaced, subresources in RESOURCES[(group, version)]:
            verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update"]
            resources.append({"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                              "verbs": verbs})
            for sub in subresources:
                resources.append({"name": "%s/%s" % (plural, sub), "singularName": "", "namespaced": namespaced,
                                  "kind": {"scale": "Scale", "log": "Pod"}.get(sub, kind),
                                  "group": "autoscaling" if sub == "scale" else None,
                                  "version": "v1" if sub == "scale" else None,
                                  "verbs": ["get"] if sub == "log" else ["get", "patch", "update"]})
        for resource in resources:
            for field in ("group", "version"):
                if resource.get(field) is None:
                    resource.pop(field, None)
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": api_version(group, version),
                "resources": resources}

    def _route(self, parts):
        """(group, version, namespace, plural, name, subresource) of a resource path."""
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace = None
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
            namespace, rest = rest[1], rest[2:]
        if not rest or (group, version, rest[0]) not in self.kinds or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return group, version, namespace, rest[0], (rest[1] if len(rest) > 1 else None), \
            (rest[2] if len(rest) > 2 else None)

    def handle(self, request):
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        self.requests.append((request.command, url.path, content_type))
        code, payload, text = 200, None, None
        try:
            if request.headers.get("Authorization") != "Bearer %s" % self.token:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            parts = [p for p in url.path.split("/") if p]
            if not parts:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if request.command == "GET" and (parts in (["version"], ["api"], ["apis"]) or (
                    parts[0] == "api" and len(parts) == 2) or (parts[0] == "apis" and len(parts) == 3)):
                payload = self._discovery(parts)
            else:
                code, payload, text = self._resource(request.command, parts, query, content_type, body)
        except ApiError as exc:
            code, payload = exc.code, exc.status()
        except Exception as exc:  # pylint: disable=broad-except
            code, payload = 500, ApiError(500, "InternalError", "fake kube api: %r" % exc).status()
        data = text.encode("utf-8") if text is not None else json.dumps(payload).encode("utf-8")
        request.send_response(code)
        request.send_header("Content-Type", "text/plain" if text is not None else "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _body(self, body, content_type):
        try:
            if content_type == "application/apply-patch+yaml":
                return yaml.safe_load(body.decode("utf-8"))
            return json.loads(body.decode("utf-8")) if body else {}
        except ValueError as exc:
            raise ApiError(400, "BadRequest", "the request body is not valid: %s" % exc)

    def _resource(self, method, parts, query, content_type, body):
        group, version, namespace, plural, name, sub = self._route(parts)
        kind, namespaced, subresources = self.kinds[(group, version, plural)]
        apiversion = api_version(group, version)
        dry_run = query.get("dryRun") == "All"
        if query.get("dryRun") not in (None, "All"):
            raise ApiError(400, "BadRequest", "invalid dry run value %s: only All is supported" % query["dryRun"])
        if dry_run:
            self.dry_runs.append((method, "/".join(parts)))
        if sub and sub not in subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        key = (apiversion, kind, namespace or "", name)
        if method == "GET" and name is None:
            selector = parse_selector(query.get("labelSelector"))
            fields = dict(term.split("=", 1) for term in (query.get("fieldSelector") or "").split(",") if "=" in term)
            items = [obj for obj in self.list(apiversion, kind, namespace)
                     if selector_matches(selector, obj["metadata"].get("labels") or {})
                     and fields.get("metadata.name", obj["metadata"]["name"]) == obj["metadata"]["name"]]
            for item in items:
                item.pop("apiVersion")
                item.pop("kind")
            return 200, {"kind": kind + "List", "apiVersion": apiversion,
                         "metadata": {"resourceVersion": str(self._version)}, "items": items}, None
        if method == "POST" and name is None:
            obj = self._body(body, content_type)
            if obj.get("apiVersion") != apiversion or obj.get("kind") != kind:
                raise ApiError(400, "BadRequest", "the body is a %s %s, not a %s" % (
                    obj.get("apiVersion"), obj.get("kind"), apiversion))
            return 201, self.create(obj, namespace if namespaced else None, dry_run), None
        if name is None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        current = self.get(*key)
        if current is None and not (method == "PATCH" and content_type == "application/apply-patch+yaml"):
            raise self._not_found(kind, name)
        if sub == "log":
            return 200, None, self.logs.get((namespace, name), "")
        if sub == "scale":
            return 200, self._scale_subresource(method, key, current, self._body(body, content_type)
                                                if method in ("PUT", "PATCH") else None, content_type, dry_run), None
        if sub == "status" and method == "GET":
            return 200, current, None
        if sub == "status":
            raise ApiError(405, "MethodNotAllowed", "the fake does not write status from clients")
        if method == "GET":
            return 200, current, None
        if method == "PUT":
            new = self._body(body, content_type)
            return 200, self.update(key, new, new.get("metadata", {}).get("resourceVersion"), dry_run), None
        if method == "PATCH":
            patch = self._body(body, content_type)
            if content_type == "application/merge-patch+json":
                new = merge_patch(current, patch)
            elif content_type == "application/strategic-merge-patch+json":
                new = strategic_merge_patch(current, patch)
            elif content_type == "application/apply-patch+yaml":
                if current is None:
                    return 201, self.create(patch, namespace if namespaced else None, dry_run), None
                new = strategic_merge_patch(current, patch)
            else:
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                               "accepted media types include: application/json-patch+json, "
                               "application/merge-patch+json, application/apply-patch+yaml")
            return 200, self.update(key, new, (patch.get("metadata") or {}).get("resourceVersion"), dry_run), None
        if method == "DELETE":
            options = self._body(body, "application/json") if body else {}
            policy = options.get("propagationPolicy") or query.get("propagationPolicy")
            if options.get("orphanDependents") is True or query.get("orphanDependents") == "true":
                policy = "Orphan"
            self.delete_options.append(("/".join(parts), policy))
            return 200, self.delete(key, policy, dry_run), None
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _scale_subresource(self, method, key, current, body, content_type, dry_run):
        if method in ("PUT", "PATCH"):
            replicas = ((body or {}).get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, "Invalid", "Scale.autoscaling \"%s\" is invalid: spec.replicas: Invalid value"
                               % key[3])
            if content_type not in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                                    "application/json") and method == "PATCH":
                raise ApiError(415, "UnsupportedMediaType", "unsupported patch type %s" % content_type)
            current = self.update(key, dict(current, spec=dict(current["spec"], replicas=replicas)), dry_run=dry_run)
        selector = ",".join("%s=%s" % item for item in sorted(
            ((current["spec"].get("selector") or {}).get("matchLabels") or {}).items()))
        meta = current["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
                "spec": {"replicas": current["spec"].get("replicas", 1)},
                "status": {"replicas": (current.get("status") or {}).get("replicas", 0), "selector": selector}}

    # --- helpers for tests --------------------------------------------------------------------------------------

    def trigger_cronjob(self, namespace, name):
        """What `kubectl create job --from=cronjob/NAME` does: a Job from the CronJob's jobTemplate, owned by it.
        Returns the Job's name."""
        cronjob = self.get("batch/v1", "CronJob", namespace, name)
        if cronjob is None:
            raise self._not_found("CronJob", name)
        template = cronjob["spec"]["jobTemplate"]
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "%s-manual-%s" % (name[:40], uuid.uuid4().hex[:5]), "namespace": namespace,
                            "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                            "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": name,
                                                 "uid": cronjob["metadata"]["uid"], "controller": True}]},
               "spec": copy.deepcopy(template["spec"])}
        return self.create(job)["metadata"]["name"]

    def wait_job(self, namespace, name, timeout=300):
        """The Job once it succeeded or failed (AssertionError after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get("batch/v1", "Job", namespace, name)
            if job and ((job.get("status") or {}).get("succeeded") or any(
                    c["type"] == "Failed" for c in (job.get("status") or {}).get("conditions") or [])):
                return job
            time.sleep(TICK)
        raise AssertionError("Job %s/%s did not finish in %d s" % (namespace, name, timeout))

    def job_log(self, namespace, job_name):
        """The logs of the Job's pods, oldest first."""
        with self.lock:
            return "".join(log for (ns, pod), log in sorted(self.logs.items())
                           if ns == namespace and pod.startswith(job_name + "-"))
