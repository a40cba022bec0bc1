"""Pods for `podman kube play` from the pod templates of the kubernetes_schedule role's CronJobs and the restore Job,
and the podman objects standing in for what a cluster provides (PVCs, Secrets).

What differs from a cluster, and why:
- hostNetwork: moto S3, Redis and the test's Pushgateway listen on the host's 127.0.0.1;
- PVCs are podman named volumes (kube play maps persistentVolumeClaim.claimName to one), owned by the runner's
  uid as fsGroup would make them (podman ignores fsGroup);
- Secrets are podman secrets, stored in the formats podman 4.3 reads: for a secret volume a Secret document whose
  data values it writes verbatim (it does not base64-decode them), for envFrom a flat JSON of base64 values; a
  secret volume gets an explicit `optional: false` (podman 4.3 crashes on a secret volume without it). podman
  copies a mounted secret into a named volume of the secret's name, removed with the rest.
Everything else of the template (securityContext, readOnlyRootFilesystem, emptyDirs, args, env) is kept.
"""

import base64
import copy
import json
import os
import subprocess
import uuid

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONTAINERS_CONF = os.environ.get("CONTAINERS_CONF") or os.path.join(REPO, "molecule", "containers.conf")
RUNNER_UID = 10001


def podman(*args, check=True, timeout=300, stdin=None):
    proc = subprocess.run(["podman"] + list(args), env=dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF),
                          input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError("podman %s failed (%d):\n%s" % (" ".join(args), proc.returncode, proc.stdout))
    return proc


def pod_template(objects, kind, name):
    """The pod template of the CronJob or Job `name` among the rendered `objects`."""
    for obj in objects:
        if obj.get("kind") == kind and obj["metadata"]["name"] == name:
            spec = obj["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else obj["spec"]
            return spec["template"]
    raise AssertionError("no %s %s among the rendered objects: %s" % (
        kind, name, ["%s/%s" % (o.get("kind"), o["metadata"]["name"]) for o in objects]))


def secret_data(objects, name):
    """The decoded data of the Secret `name` among the rendered objects."""
    for obj in objects:
        if obj.get("kind") == "Secret" and obj["metadata"]["name"] == name:
            data = {key: base64.b64decode(value) for key, value in (obj.get("data") or {}).items()}
            data.update({key: value.encode() for key, value in (obj.get("stringData") or {}).items()})
            return data
    raise AssertionError("no Secret %s among the rendered objects" % name)


class Kube(object):
    """Podman objects named <prefix>-...; close() removes every pod, secret and volume it made."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.prefix = "lbk8s-%s" % uuid.uuid4().hex[:6]
        self.pods, self.secrets, self.volumes = [], [], []

    def name(self, what):
        return "%s-%s" % (self.prefix, what)

    def volume(self, claim):
        """A fresh named volume for the PVC `claim`, owned by the runner (what fsGroup gives on a cluster);
        returns (volume name, its directory on the host)."""
        volume = self.name(claim)
        podman("volume", "create", volume)
        self.volumes.append(volume)
        path = podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip()
        os.chown(path, RUNNER_UID, RUNNER_UID)
        return volume, path

    def _secret(self, name, document):
        secret = self.name(name)
        path = os.path.join(self.workdir, "secret-%s" % secret)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(document)
        podman("secret", "create", secret, path)
        self.secrets.append(secret)
        os.unlink(path)
        return secret

    def volume_secret(self, name, data):
        """The podman secret standing in for the Secret `name` mounted as a volume (data: file name -> bytes of
        UTF-8 text); returns its name."""
        return self._secret(name, yaml.safe_dump({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {key: value.decode("utf-8") for key, value in data.items()}}))

    def env_secret(self, name, values):
        """The podman secret standing in for the Secret `name` read through envFrom (values: variable -> string);
        returns its name."""
        return self._secret(name, json.dumps({key: base64.b64encode(value.encode()).decode()
                                              for key, value in values.items()}))

    def run(self, template, names, what, timeout=240):
        """Run the pod template as the Pod <prefix>-<what> to its end; `names` maps the PVC and Secret names of the
        template to the podman volumes and secrets standing in for them. Returns (exit status of its container
        `lifeboat`, its log); the pod is removed afterwards."""
        spec = copy.deepcopy(template["spec"])
        spec["hostNetwork"] = True
        spec["restartPolicy"] = "Never"
        for volume in spec.get("volumes") or []:
            if volume.get("persistentVolumeClaim"):
                volume["persistentVolumeClaim"]["claimName"] = names[volume["persistentVolumeClaim"]["claimName"]]
            if volume.get("secret"):
                volume["secret"]["secretName"] = names[volume["secret"]["secretName"]]
                volume["secret"].setdefault("optional", False)  # podman 4.3 dereferences it unchecked
                if volume["secret"]["secretName"] not in self.volumes:  # podman copies the secret into a volume
                    self.volumes.append(volume["secret"]["secretName"])
        for container in spec["containers"]:
            for source in container.get("envFrom") or []:
                if source.get("secretRef"):
                    source["secretRef"]["name"] = names[source["secretRef"]["name"]]
        pod = self.name(what)
        manifest = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod, "labels": dict(template.get("metadata", {}).get("labels") or {})},
                    "spec": spec}
        path = os.path.join(self.workdir, "%s.yml" % pod)
        with open(path, "w") as handle:
            yaml.safe_dump(manifest, handle)
        self.pods.append(pod)
        podman("kube", "play", path)
        container = "%s-lifeboat" % pod
        status = podman("wait", container, timeout=timeout).stdout.strip().splitlines()[-1]
        log = podman("logs", container).stdout
        podman("pod", "rm", "-f", pod)
        self.pods.remove(pod)
        return int(status), log

    def close(self):
        for pod in self.pods:
            podman("pod", "rm", "-f", pod, check=False)
        for secret in self.secrets:
            podman("secret", "rm", secret, check=False)
        for volume in self.volumes:
            podman("volume", "rm", "-f", volume, check=False)
