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

The modules, each layer a class built on the one before:
- resources.py: the resource types served and the kinds the controllers act on; errors.py: ApiError (Status);
- patches.py, selectors.py, defaults.py: merge and strategic merge patch, label selectors, the write defaults;
- store.py (ObjectStore): the objects, resourceVersions, create/update/delete, owner references;
- jobs.py (JobController): a Job's Pod run through job_runner, and the tests' Job helpers;
- controllers.py (Controllers): the garbage collector and the workloads' status, every tick;
- rest.py (RestApi): the REST verbs and subresources on resource paths; discovery.py: the discovery documents;
- server.py (FakeKubeApi): the HTTP server, its kubeconfig and the request handling.
"""

from .defaults import defaulted
from .errors import ApiError
from .server import FakeKubeApi

__all__ = ["ApiError", "FakeKubeApi", "defaulted"]
