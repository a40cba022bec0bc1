"""The fake Kubernetes API's background controllers, run every tick (0.2 s): the garbage collector (Background
deletion removes the dependents whose owners are gone, Foreground removes an owner once its dependents are) and
the workload controllers (a StatefulSet's or Deployment's status follows spec.replicas one tick later)."""

import threading

from .jobs import JobController
from .resources import TICK, WORKLOADS


class Controllers(JobController):
    """The store and its Job controller, with the controllers that `_controllers` runs until `_stop` is set."""

    def __init__(self, job_runner=None):
        super().__init__(job_runner)
        self._stop = threading.Event()

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
