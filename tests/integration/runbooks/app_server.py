"""A tiny "application" for the runbook tests: an HTTP server whose /health reads a SQLite database.

    python3 app_server.py start --db DB --port PORT --pidfile PIDFILE [--log LOG]
    python3 app_server.py stop --pidfile PIDFILE
    python3 app_server.py serve --db DB --port PORT        (foreground; what `start` daemonizes)

GET /health answers 200 when the table `meta` holds key 'health' = 'ok', 503 otherwise (including when the
database is missing or unreadable). GET /rows answers the number of rows of the table `items`.
`start` returns once the server answers; `stop` returns once the process is gone. Both exit non-zero on failure,
so playbooks can use them as start/stop commands instead of a service manager.
"""

import argparse
import http.server
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request


def query(db, sql):
    if not os.path.exists(db):
        raise RuntimeError("database %s is missing" % db)
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchone()
    finally:
        conn.close()


def serve(db, port):
    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, status, text):
            body = (text + "\n").encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 (http.server naming)
            try:
                if self.path == "/health":
                    row = query(db, "SELECT value FROM meta WHERE key = 'health'")
                    value = row[0] if row else None
                    self.answer(200 if value == "ok" else 503, "health: %s" % value)
                elif self.path == "/rows":
                    self.answer(200, str(query(db, "SELECT count(*) FROM items")[0]))
                else:
                    self.answer(404, "not found")
            except Exception as exc:  # the health check must answer, not hang
                self.answer(503, "error: %s" % exc)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    server.serve_forever()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not running
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def read_pid(pidfile):
    try:
        with open(pidfile) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def start(db, port, pidfile, log):
    pid = read_pid(pidfile)
    if pid and alive(pid):
        return 0
    with open(log or os.devnull, "ab") as out:
        process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve", "--db", db, "--port", str(port)],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                   close_fds=True)
    with open(pidfile + ".tmp", "w") as handle:
        handle.write(str(process.pid))
    os.replace(pidfile + ".tmp", pidfile)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.stderr.write("app server exited with status %s\n" % process.returncode)
            return 1
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/rows" % port, timeout=1).close()
            return 0
        except urllib.error.HTTPError:
            return 0  # it answers, whatever the data says
        except OSError:
            time.sleep(0.05)
    sys.stderr.write("app server does not answer on port %d\n" % port)
    return 1


def stop(pidfile):
    pid = read_pid(pidfile)
    if pid and alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
    if os.path.exists(pidfile):
        os.unlink(pidfile)
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["start", "stop", "serve"])
    parser.add_argument("--db")
    parser.add_argument("--port", type=int)
    parser.add_argument("--pidfile")
    parser.add_argument("--log")
    args = parser.parse_args()
    if args.action == "serve":
        serve(args.db, args.port)
        return 0
    if args.action == "start":
        return start(args.db, args.port, args.pidfile, args.log)
    return stop(args.pidfile)


if __name__ == "__main__":
    sys.exit(main())
