"""A small S3 fault injector: an HTTP proxy on 127.0.0.1 in front of moto.

Rules match a request kind (UploadPart, PutObject, GetObject, ...) and either answer an S3 error for the
first N matching requests (then forward), delay them, or stall a download after some bytes. Every request
is recorded with the status the client got, so tests can tell that retries really happened.
"""

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from support.ports import free_port

ERROR_XML = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
             '<RequestId>lifeboat-fault</RequestId></Error>')
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}


def classify(method, path, query):
    """The S3 operation name of a path-style request."""
    parts = [p for p in path.split("/") if p]
    if len(parts) <= 1:
        return {"HEAD": "HeadBucket", "GET": "ListObjects", "PUT": "CreateBucket",
                "POST": "DeleteObjects"}.get(method, method)
    if method == "PUT":
        return "UploadPart" if "partNumber" in query else ("PutManifest" if parts[-1] == "manifest.json"
                                                           else "PutObject")
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "GET":
        return "GetManifest" if parts[-1] == "manifest.json" else "GetObject"
    return "HeadObject" if method == "HEAD" else method


class Rule(object):
    def __init__(self, kind, action, times=None, status=503, code="SlowDown", seconds=0.0, after_bytes=0):
        self.kind = kind
        self.action = action  # "fail", "delay" or "stall"
        self.times = times  # None: every matching request
        self.status = status
        self.code = code
        self.seconds = seconds
        self.after_bytes = after_bytes
        self.hits = 0

    def take(self, kind):
        if kind != self.kind or (self.times is not None and self.hits >= self.times):
            return False
        self.hits += 1
        return True


class FaultProxy(object):
    def __init__(self, upstream):
        target = urlsplit(upstream)
        self.upstream = (target.hostname, target.port)
        self.rules = []
        self.log = []  # (kind, status) in arrival order
        self.released = threading.Event()  # set to end stalls and delays early
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(data)
                        data += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self):
                split = urlsplit(self.path)
                query = parse_qs(split.query, keep_blank_values=True)
                kind = classify(self.command, split.path, query)
                body = self._body()
                rule = proxy.match(kind)
                if rule is not None and rule.action == "fail":
                    proxy.record(kind, rule.status)
                    payload = (ERROR_XML % (rule.code, "injected by the lifeboat fault proxy")).encode()
                    self.send_response(rule.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                if rule is not None and rule.action == "delay":
                    proxy.released.wait(rule.seconds)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    proxy.record(kind, response.status)
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in HOP_HEADERS:
                            self.send_header(key, value)
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    sent = 0
                    stalled = False
                    while True:
                        chunk = response.read(64 * 1024)
                        if not chunk:
                            break
                        if rule is not None and rule.action == "stall" and not stalled and \
                                sent + len(chunk) > rule.after_bytes:
                            head = rule.after_bytes - sent
                            self.wfile.write(chunk[:head])
                            self.wfile.flush()
                            stalled = True
                            proxy.released.wait(rule.seconds)
                            chunk = chunk[head:]
                        self.wfile.write(chunk)
                        sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, kind, action="fail", **kwargs):
        with self._lock:
            self.rules.append(Rule(kind, action, **kwargs))

    def clear(self):
        with self._lock:
            self.rules = []
        self.released.set()
        time.sleep(0.05)
        self.released.clear()

    def match(self, kind):
        with self._lock:
            for rule in self.rules:
                if rule.take(kind):
                    return rule
        return None

    def record(self, kind, status):
        with self._lock:
            self.log.append((kind, status))

    def statuses(self, kind):
        with self._lock:
            return [status for k, status in self.log if k == kind]

    def stop(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
