"""Runs the benchmark suite and writes docs/performance.md.

    python3 bench/run.py                      # about 1 GB each: SQLite and PostgreSQL (pgbench scale 70)
    python3 bench/run.py --sqlite-mb 100 --pg-scale 5 --repeat 1 --output -     # a quick check, printed only

Each benchmark prints a markdown section; this puts them together with the date and the machine.
Run it on a quiet machine: every figure is wall time. First it installs what it needs, peers included
(`bash .ci/install --bench`: restic, borgbackup and borgmatic from Debian; LIFEBOAT_SKIP_INSTALL=1 skips that).
The peers restic and borgmatic run in the same run, always: a missing one is an error. --no-peers leaves them
out, and their rows then say "skipped (--no-peers)".
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys

from common import require_peers

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(os.path.dirname(HERE), "docs", "performance.md")
NOTES = "## Reading the figures"

INTRO = """# Performance

Measured by `python3 bench/run.py` on %(date)s: %(machine)s, %(cores)d cores, Python %(python)s.
S3 is moto on 127.0.0.1, a Python server sharing the same cores, so every S3 figure includes its CPU
cost; against real S3 or MinIO the upload stage is network-bound instead. Peak memory is the whole
process tree (tool plus children), sampled from /proc every 50 ms. The peers restic (to the same S3) and
borgmatic (a local borg repository) run in the same run, once each; `python3 bench/run.py` installs them
(`bash .ci/install --bench`) and fails if they are missing, and only `--no-peers` leaves them out, which their
rows then say.

"""


HEADINGS = {"sqlite": "## SQLite", "postgres": "## PostgreSQL"}


def kept_section(document, heading):
    """The section of `document` that starts with `heading`, up to the next second-level heading."""
    start = document.find("\n" + heading)
    if start < 0:
        return None
    end = document.find("\n## ", start + 1)
    return document[start + 1:end if end >= 0 else len(document)].strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--sqlite-mb", type=int, default=1024)
    parser.add_argument("--pg-scale", type=int, default=70)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure, median shown (default 5: single "
                                                              "runs on a shared 2-core machine vary by 10-30%%)")
    parser.add_argument("--output", default=DOC, help="file to write, or - for stdout only")
    parser.add_argument("--no-peers", action="store_true", help="leave restic and borgmatic out (the rows say so)")
    args = parser.parse_args()
    if os.environ.get("LIFEBOAT_SKIP_INSTALL") != "1":
        subprocess.run(["bash", os.path.join(os.path.dirname(HERE), ".ci", "install"), "--bench"], check=True)
    require_peers(args.no_peers)  # fails here, before an hour of figures, when a peer is missing
    previous = ""
    if args.output != "-" and os.path.exists(args.output):
        with open(args.output) as handle:
            previous = handle.read()
    sections = []
    repeat = ["--repeat", str(args.repeat)] + (["--no-peers"] if args.no_peers else [])
    runs = [("sqlite", ["bench_sqlite.py", "--size-mb", str(args.sqlite_mb)] + repeat),
            ("postgres", ["bench_postgres.py", "--scale", str(args.pg_scale)] + repeat)]
    for name, argv in runs:
        if args.only and name != args.only:
            kept = kept_section(previous, HEADINGS[name])  # --only: the other benchmark's figures stay
            if kept:
                sections.append(kept)
            continue
        print("running %s ..." % " ".join(argv), file=sys.stderr)
        result = subprocess.run([sys.executable, os.path.join(HERE, argv[0])] + argv[1:], cwd=HERE,
                                stdout=subprocess.PIPE, check=True)
        sections.append(result.stdout.decode().strip())
    text = INTRO % {"date": datetime.date.today().isoformat(), "machine": platform.platform(terse=True),
                    "cores": os.cpu_count(), "python": platform.python_version()} + "\n\n".join(sections) + "\n"
    if NOTES in previous:  # the hand-written analysis is kept across runs
        text += "\n" + previous[previous.index(NOTES):]
    print(text)
    if args.output != "-":
        with open(args.output, "w") as handle:
            handle.write(text)
        print("wrote %s" % args.output, file=sys.stderr)


if __name__ == "__main__":
    main()
