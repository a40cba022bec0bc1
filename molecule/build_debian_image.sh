#!/bin/sh
# Build the local Debian 12 image the molecule scenarios use (no image registry is reachable).
#   molecule/build_debian_image.sh [IMAGE]        default IMAGE: localhost/lifeboat-debian:12
# Skips the build when the image exists (set LIFEBOAT_IMAGE_REBUILD=1 to force it).
# Needs: root, debootstrap, podman (with CONTAINERS_CONF pointing at molecule/containers.conf).
# The image is a minimal bookworm with systemd (PID 1 in the containers), python3 and python3-apt
# (for Ansible's apt module); everything the roles need they install themselves.
set -eu

IMAGE="${1:-localhost/lifeboat-debian:12}"
SUITE="${LIFEBOAT_IMAGE_SUITE:-bookworm}"
MIRROR="${LIFEBOAT_IMAGE_MIRROR:-http://deb.debian.org/debian}"
INCLUDE="python3,python3-apt,systemd,systemd-sysv,dbus,ca-certificates,procps"

if [ -z "${CONTAINERS_CONF:-}" ]; then
    CONTAINERS_CONF="$(cd "$(dirname "$0")" && pwd)/containers.conf"
    export CONTAINERS_CONF
fi

if [ "${LIFEBOAT_IMAGE_REBUILD:-0}" != "1" ] && podman image exists "$IMAGE"; then
    echo "image $IMAGE exists; not rebuilding (LIFEBOAT_IMAGE_REBUILD=1 forces it)"
    exit 0
fi

for tool in debootstrap podman tar; do
    command -v "$tool" >/dev/null 2>&1 || { echo "missing $tool: apt-get install -y debootstrap podman runc" >&2; exit 1; }
done

ROOTFS="$(mktemp -d /var/tmp/lifeboat-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT INT TERM

debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR"

# Trim what a container does not need, and keep systemd quiet about things it cannot do in one.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
# No package lists: make them look stale so that apt's cache_valid_time triggers an update.
touch -d 2000-01-01 "$ROOTFS/var/lib/apt/lists"
: > "$ROOTFS/etc/machine-id"
for unit in systemd-remount-fs.service getty.target console-getty.service systemd-logind.service; do
    ln -sf /dev/null "$ROOTFS/etc/systemd/system/$unit"
done

tar -C "$ROOTFS" -c . | podman import --change 'CMD ["/lib/systemd/systemd"]' - "$IMAGE"
echo "built $IMAGE"
