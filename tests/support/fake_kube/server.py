"""The fake Kubernetes API's HTTP side: FakeKubeApi, a threaded http.server on 127.0.0.1 with its kubeconfig (one
bearer token grants everything, 401 otherwise), each request answered with a discovery document or the REST verb's
result, errors as Status bodies; the controllers' thread started with it and stopped by close()."""

import http.server
import json
import os
import threading
import urllib.parse
import uuid

import yaml

from .discovery import discovery, is_discovery
from .errors import ApiError
from .rest import RestApi


class FakeKubeApi(RestApi):
    """The server and its store: objects by (apiVersion, kind, namespace, name)."""

    def __init__(self, workdir, job_runner=None, token=None):
        self.workdir = workdir
        self.token = token or uuid.uuid4().hex
        self.requests = []       # (method, path, content type)
        super().__init__(job_runner)
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
            if is_discovery(request.command, parts):
                payload = discovery(parts, self.url)
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
