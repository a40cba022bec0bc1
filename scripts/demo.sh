#!/usr/bin/env bash
# Demo: backs up a sample SQLite database to S3 and a local directory, lists the catalog, deletes the
# database, restores it from S3 and verifies it. Installs what it needs (Debian/Ubuntu, as root).
# S3: set LIFEBOAT_DEMO_S3_ENDPOINT (and AWS_* credentials, LIFEBOAT_DEMO_BUCKET) to use your own
# store; otherwise a local S3 endpoint (moto) is started on 127.0.0.1 for the demo and stopped after.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# Console scripts (ansible-playbook...) of the interpreter that runs the demo.
export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
cd "$repo"
# LIFEBOAT_SKIP_INSTALL=1 skips the install step (quick anyway when everything is there).
[ "${LIFEBOAT_SKIP_INSTALL:-}" = 1 ] || bash .ci/install --demo

work="$repo/.demo"
rm -rf "$work" && mkdir -p "$work/app" "$work/collections/ansible_collections/lifeboat"
ln -s "$repo" "$work/collections/ansible_collections/lifeboat/backup"

moto_pid=""
cleanup() { [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [ -z "${LIFEBOAT_DEMO_S3_ENDPOINT:-}" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
  moto_pid=$!
  export LIFEBOAT_DEMO_S3_ENDPOINT="http://127.0.0.1:$port"
  export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1
  # Wait (up to about 20 s) until moto accepts connections; a refused connection is expected meanwhile.
  up=""
  for _ in $(seq 100); do
    if python3 - "$port" <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5).close()
except OSError:
    sys.exit(1)
PY
    then up=1; break; fi
    kill -0 "$moto_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$up" ]; then
    echo "demo: the local S3 endpoint (moto) did not come up on 127.0.0.1:$port; its log ($work/moto.log) ends:" >&2
    tail -n 20 "$work/moto.log" >&2
    echo "demo: check that moto[server] is installed (bash .ci/install --demo) or set LIFEBOAT_DEMO_S3_ENDPOINT." >&2
    exit 1
  fi
  python3 - <<'PY'
import os, boto3
boto3.client("s3", endpoint_url=os.environ["LIFEBOAT_DEMO_S3_ENDPOINT"]).create_bucket(
    Bucket=os.environ.get("LIFEBOAT_DEMO_BUCKET", "lifeboat-demo"))
PY
  echo "demo: local S3 endpoint (moto) at $LIFEBOAT_DEMO_S3_ENDPOINT"
fi

ANSIBLE_COLLECTIONS_PATH="$work/collections" ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-}" \
  ansible-playbook -i "localhost," -e "ansible_python_interpreter=$(command -v python3)" playbooks/demo.yml
