#!/usr/bin/env bash
# Build the lifeboat runner image for Kubernetes from this collection (images/runner/Containerfile):
#   bash scripts/build_runner_image.sh [IMAGE]
# IMAGE defaults to localhost/lifeboat-runner:<version from galaxy.yml>, also tagged :latest.
# No registry is needed: the base is localhost/lifeboat-debian:12, built by molecule/build_debian_image.sh
# (debootstrap) when it is missing. Needs root, podman, runc (CONTAINERS_CONF defaults to molecule/containers.conf).
#
# Quick when nothing changed: the image carries the sha256 of the runner zipapp (build_runner.py builds it
# reproducibly) and of what else goes into it as labels, and the build is skipped when IMAGE already has them
# (LIFEBOAT_IMAGE_REBUILD=1 forces it). Otherwise podman's layer cache keeps the apt layer and only the zipapp
# layer is rebuilt. Push the image to your cluster's registry yourself (podman push IMAGE REGISTRY/...).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/molecule/containers.conf}"
version=$(sed -n 's/^version:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$here/galaxy.yml")
default_image="localhost/lifeboat-runner:$version"
image="${1:-$default_image}"
base="localhost/lifeboat-debian:12"

for tool in podman python3 sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || { echo "build_runner_image: missing $tool (apt-get install -y podman runc)" >&2; exit 1; }
done
sh "$here/molecule/build_debian_image.sh" "$base"

context=$(mktemp -d /var/tmp/lifeboat-runner-image.XXXXXX)
trap 'rm -rf "$context"' EXIT INT TERM
cp "$here/images/runner/Containerfile" "$here/images/runner/lifeboat" "$context/"
python3 "$here/roles/schedule/files/build_runner.py" --engine "$here/plugins/module_utils/engine" \
    --output "$context/lifeboat.pyz" --interpreter /usr/bin/python3 >/dev/null
engine_sha=$(sha256sum "$context/lifeboat.pyz" | cut -d' ' -f1)
base_id=$(podman image inspect --format '{{.Id}}' "$base")
build_key=$( (cd "$context" && sha256sum Containerfile lifeboat lifeboat.pyz; echo "$base_id") | sha256sum | cut -d' ' -f1)

current=$(podman image inspect --format '{{index .Labels "org.lifeboat.runner.build-key"}}' "$image" 2>/dev/null || true)
if [ "${LIFEBOAT_IMAGE_REBUILD:-0}" != "1" ] && [ "$current" = "$build_key" ]; then
    echo "image $image is up to date (engine sha256 $engine_sha); not rebuilding (LIFEBOAT_IMAGE_REBUILD=1 forces it)"
    exit 0
fi

previous=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
# --network host: the apt layer reaches Debian's mirror the way the host does.
podman build --network host --layers --pull=never -f "$context/Containerfile" -t "$image" \
    --label "org.lifeboat.runner.engine-sha256=$engine_sha" --label "org.lifeboat.runner.build-key=$build_key" \
    --label "org.opencontainers.image.version=$version" --label "org.opencontainers.image.title=lifeboat-runner" \
    "$context"
if [ "$image" = "$default_image" ]; then
    podman tag "$image" "localhost/lifeboat-runner:latest"
fi
# The image of the previous engine, now untagged (its layers below the zipapp are shared): removed unless in use.
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$image")" ]; then
    podman rmi "$previous" >/dev/null 2>&1 || true
fi
echo "built $image (engine sha256 $engine_sha)"
