"""restart_command used by the tests: stop the test server (if it runs), then start it again from the same
config file (same dir, port, password), as `systemctl restart redis-server` would.

Usage: restart_redis.py CONFIG_FILE [STOP]. STOP is how the server is stopped:
  nosave   SHUTDOWN NOSAVE (the default)
  sigterm  SIGTERM to the pid in the pidfile, as systemd stops the service: Redis saves on it when it has save
           points (or shutdown-on-sigterm save)
  save     SHUTDOWN SAVE: a stop path that always saves, whatever the configuration says
The password is read from the 0600 config file, never from argv."""

import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "plugins",
                                "module_utils"))

from engine.sources.redis.resp import RedisClient  # noqa: E402
from engine.core.errors import LifeboatError  # noqa: E402


def settings(path):
    values = {}
    with open(path) as handle:
        for line in handle:
            parts = line.strip().split(None, 1)
            if len(parts) == 2:
                values[parts[0]] = parts[1].strip('"')
    return values


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def shutdown(port, password, how):
    try:
        client = RedisClient("127.0.0.1", port, password=password, timeout=5)
        try:
            client.execute("SHUTDOWN", how)
        except Exception:  # the connection closes as the server exits
            pass
    except LifeboatError:
        pass  # not running


def terminate(pidfile):
    try:
        with open(pidfile) as handle:
            os.kill(int(handle.read().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        pass  # not running


def main():
    conf = sys.argv[1]
    stop = sys.argv[2] if len(sys.argv) > 2 else "nosave"
    values = settings(conf)
    port = int(values["port"])
    if stop == "sigterm":
        terminate(values["pidfile"])
    else:
        shutdown(port, values.get("requirepass"), {"nosave": "NOSAVE", "save": "SAVE"}[stop])
    deadline = time.monotonic() + 20
    while listening(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    pidfile = values.get("pidfile")
    while pidfile and os.path.exists(pidfile) and time.monotonic() < deadline:
        time.sleep(0.05)
    subprocess.run(["redis-server", conf], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    while not listening(port):
        if time.monotonic() > deadline:
            sys.exit("redis-server did not listen on %d" % port)
        time.sleep(0.05)


if __name__ == "__main__":
    main()
