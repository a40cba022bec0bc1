#!/usr/bin/env bash
# Runs every molecule scenario: podman containers from a Debian 12 image built locally with
# debootstrap (molecule/build_debian_image.sh, built once and reused).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF="$repo/molecule/containers.conf"
status=0
for scenario in schedule:default schedule:absent litestream:default; do
  role=${scenario%%:*}
  name=${scenario##*:}
  echo "molecule: roles/$role scenario $name"
  (cd "$repo/roles/$role" && molecule test -s "$name") || { echo "molecule: roles/$role $name FAILED"; status=1; }
done
exit $status
