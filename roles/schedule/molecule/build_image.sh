#!/bin/sh
# Builds (once) the local Debian 12 image the schedule scenarios run in; molecule calls it as the
# scenario's dependency step. The work is done by the repository's molecule/build_debian_image.sh.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/../../../molecule/build_debian_image.sh" "${LIFEBOAT_MOLECULE_IMAGE:-localhost/lifeboat-debian:12}"
