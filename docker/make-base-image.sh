#!/usr/bin/env bash
# Build a local stand-in for the python:3.11-slim base image where no container registry is reachable (CI):
# a Debian bookworm minbase root file system made by debootstrap from the Debian mirror, with Debian's python3 (3.11)
# and venv support, imported with `docker import`.
#
#   docker/make-base-image.sh TAG            e.g. docker/make-base-image.sh python:3.11-slim
#
# Environment: DOCKER (client, default /usr/bin/docker), DEBIAN_MIRROR (default http://deb.debian.org/debian),
# BASE_WORK_DIR (scratch directory, default a new one under /var/tmp, removed afterwards). Needs root (debootstrap).
# With a registry at hand, use the real image instead: `docker pull python:3.11-slim`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=docker/lib.sh
source "$here/lib.sh"

tag=${1:?usage: make-base-image.sh TAG}
DOCKER=${DOCKER:-/usr/bin/docker}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
packages=python3,python3-venv,python-is-python3

[ "$(id -u)" = 0 ] || die "make-base-image.sh needs root (debootstrap)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (Debian: apt-get install debootstrap)"

own_work=0
if [ -z "${BASE_WORK_DIR:-}" ]; then
    BASE_WORK_DIR=$(mktemp -d /var/tmp/calcinosis-base.XXXXXX)
    own_work=1
fi
mkdir -p "$BASE_WORK_DIR"
rootfs=$BASE_WORK_DIR/rootfs
cleanup_base() {
    rm -rf "$rootfs"
    if [ "$own_work" = 1 ]; then rm -rf "$BASE_WORK_DIR"; fi
}
trap cleanup_base EXIT

bootstrap() {
    rm -rf "$rootfs"
    timeout 900 debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
        >"$BASE_WORK_DIR/debootstrap.log" 2>&1
}
log "debootstrap $suite (minbase + $packages) from $mirror"
if ! retry 3 "debootstrap" bootstrap; then
    show_tail "$BASE_WORK_DIR/debootstrap.log"
    die "debootstrap of $suite from $mirror failed for good: is the Debian mirror reachable? (log above)"
fi

# What a slim image leaves out: package caches and lists, documentation, man pages, translations.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log
version=$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
case $version in 3.11.*) ;; *) die "the stand-in base has Python $version, not 3.11" ;; esac

log "importing the root file system as $tag (Debian's Python $version)"
tar --numeric-owner -C "$rootfs" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL org.calcinosis-cds.base-stand-in=debootstrap-bookworm-minbase' \
    --change 'CMD ["python3"]' \
    - "$tag" >/dev/null
log "base image $tag ready"
