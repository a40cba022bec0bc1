"""Put a job's previous data back after a restore whose health check failed (the put-back Job of
playbooks/kubernetes_restore.yml). Run as `python3 -I -c <this file> KIND TARGET PREVIOUS` in the runner image, on
the job's volumes: PREVIOUS is what the runner's restore kept aside (TARGET.lifeboat-prev-<UTC time>[-<hex>]).

SQLite: the restored database's journal files are removed, PREVIOUS and its journal files are renamed back.
Directory: the restored directory is renamed aside, PREVIOUS renamed back, then the rejected one removed.
Only renames and unlinks of these exact names; symlinks are never followed. Prints one JSON line."""
import json
import os
import re
import shutil
import stat
import sys
import time

COMPANIONS = ("-wal", "-shm", "-journal")


def fail(message):
    print(json.dumps({"status": "failed", "error": message}))
    sys.exit(1)


def main(kind, target, previous):
    if not os.path.isabs(target) or os.path.normpath(target) != target or target == "/":
        fail("target %r is not a normalised absolute path" % target)
    if not re.fullmatch(re.escape(target) + r"\.lifeboat-prev-[0-9]{8}T[0-9]{6}Z(-[0-9a-f]{4,16})?", previous):
        fail("%r is not the kept-aside copy of %r (<target>.lifeboat-prev-<time>)" % (previous, target))
    try:
        kept = os.lstat(previous)
    except FileNotFoundError:
        fail("the kept-aside copy %s is gone; the restored data stays at %s" % (previous, target))
    if kind == "sqlite":
        if not stat.S_ISREG(kept.st_mode):
            fail("%s is not a regular file" % previous)
        for suffix in COMPANIONS:
            try:
                os.unlink(target + suffix)
            except FileNotFoundError:
                pass
        os.rename(previous, target)
        for suffix in COMPANIONS:
            if os.path.lexists(previous + suffix) and stat.S_ISREG(os.lstat(previous + suffix).st_mode):
                os.rename(previous + suffix, target + suffix)
    elif kind == "directory":
        if not stat.S_ISDIR(kept.st_mode):
            fail("%s is not a directory" % previous)
        rejected = "%s.lifeboat-failed-%s" % (target, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
        if os.path.lexists(target):
            os.rename(target, rejected)
        os.rename(previous, target)
        if os.path.lexists(rejected):
            shutil.rmtree(rejected)
    else:
        fail("kind %s has no put-back Job; its previous data is at %s" % (kind, previous))
    dirfd = os.open(os.path.dirname(target), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)
    print(json.dumps({"status": "ok", "restored_to": target, "put_back": previous}))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        fail("usage: put_back KIND TARGET PREVIOUS")
    main(*sys.argv[1:])
