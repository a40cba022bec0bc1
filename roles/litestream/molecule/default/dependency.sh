#!/bin/sh
# molecule dependency step: build (once) the shared Debian 12 image and expose this checkout as the
# lifeboat.backup collection (a symlink) so the role's lifeboat.backup.litestream_config resolves.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
"$repo/molecule/build_debian_image.sh" "${LIFEBOAT_MOLECULE_IMAGE:-localhost/lifeboat-debian:12}"
link="${LIFEBOAT_MOLECULE_COLLECTIONS:-/tmp/lifeboat-molecule-collections}/ansible_collections/lifeboat/backup"
mkdir -p "$(dirname "$link")"
ln -sfn "$repo" "$link"
