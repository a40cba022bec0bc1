"""The sample application's health endpoint, run inside the rebuilt instance by playbooks/dr_rebuild_ec2.yml.

    python3 health_app.py DB EXPECTED_ROWS PORT

GET /health answers 200 "ok <rows>" only when DB opens, passes PRAGMA quick_check and its orders table holds
EXPECTED_ROWS rows; anything else is 503 with the reason.
"""

import http.server
import sqlite3
import sys

DB, EXPECTED, PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def state():
    try:
        conn = sqlite3.connect("file:%s?mode=ro" % DB, uri=True, timeout=5)
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            rows = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return 503, "database error: %s" % exc
    if check != "ok":
        return 503, "quick_check: %s" % check
    if rows != EXPECTED:
        return 503, "orders has %d rows, expected %d" % (rows, EXPECTED)
    return 200, "ok %d" % rows


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, body = state() if self.path == "/health" else (404, "not found")
        data = (body + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


http.server.HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
