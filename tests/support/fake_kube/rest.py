"""The fake Kubernetes API's REST verbs on resource paths: a path routed to (group, version, namespace, plural, name,
subresource), then GET, LIST (label and field selectors), POST, PUT, PATCH (merge-patch, strategic-merge-patch,
application/apply-patch+yaml: create or merge), DELETE (propagationPolicy, orphanDependents) and the scale, status
and log subresources, on the store; dryRun=All recorded and passed on; 405, 415 and 422 raised as ApiError."""

import json

import yaml

from .controllers import Controllers
from .errors import ApiError
from .patches import merge_patch, strategic_merge_patch
from .resources import api_version
from .selectors import parse_selector, selector_matches


class RestApi(Controllers):
    """The store and its controllers behind the REST verbs; `_resource` answers (code, JSON payload, text)."""

    def __init__(self, job_runner=None):
        super().__init__(job_runner)
        self.delete_options = []  # (path, propagation policy or None) of every DELETE
        self.dry_runs = []       # (method, path) of every request with dryRun=All (nothing stored)

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
