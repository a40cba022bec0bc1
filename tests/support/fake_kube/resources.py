"""The resource types the fake Kubernetes API serves (group, version, plural, kind, subresources), the kinds its
controllers act on, and the small helpers every part shares (timestamps, apiVersion strings, the controllers' tick)."""

import datetime

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
