"""The fake Kubernetes API's discovery documents (/version, /api, /api/v1, /apis, /apis/<group>/<version>), listing
the resources of resources.RESOURCES with their scale, status and log subresources, as the `kubernetes` Python
client's dynamic client reads them."""

from .errors import ApiError
from .resources import RESOURCES, api_version


def is_discovery(method, parts):
    """Whether the request (its path split on /) asks for a discovery document."""
    return method == "GET" and (parts in (["version"], ["api"], ["apis"]) or (
        parts[0] == "api" and len(parts) == 2) or (parts[0] == "apis" and len(parts) == 3))


def discovery(parts, url):
    """The discovery document at `parts` of the server at `url`."""
    if parts == ["version"]:
        return {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "platform": "linux/amd64"}
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": url[len("http://"):]}]}
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
