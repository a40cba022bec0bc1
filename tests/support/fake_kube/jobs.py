"""The fake Kubernetes API's Job controller: a worker thread per created Job makes its Pod (owner reference, the
Job's pod labels), calls `job_runner(api, job, pod)` -> (exit status, log), records the log as the Pod's log and
sets the Pod's phase and the Job's status (succeeded or failed, conditions), retrying up to backoffLimit; without
a job_runner (no node) the Job stays active. Also the tests' Job helpers: trigger_cronjob (what `kubectl create job
--from=cronjob/NAME` does: CronJob schedules are not run), wait_job and job_log."""

import copy
import threading
import time
import uuid

from .resources import TICK, now
from .store import ObjectStore


class JobController(ObjectStore):
    """The store, with Jobs that run through `job_runner`."""

    def __init__(self, job_runner=None):
        self.job_runner = job_runner
        super().__init__()

    def _job_created(self, key, uid):
        threading.Thread(target=self._run_job, args=(key, uid), daemon=True).start()

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
