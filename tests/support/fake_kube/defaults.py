"""The defaults the fake Kubernetes API fills in on every write, as a real API server does (CronJob suspend, pod
template dnsPolicy, schedulerName, terminationGracePeriodSeconds, container terminationMessagePath...; Secret
stringData folded into data), so that apply idempotence is proven against an object that differs from the
manifest."""

import base64
import copy

from .resources import WORKLOADS


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
