#!/usr/bin/env bash
# Builds the container image for real with Buildah (vfs storage, chroot isolation: no daemon,
# no privileges beyond root) from a Debian base made by debootstrap from Debian's packages:
#
#   scripts/build-image.sh [TAG]     default TAG: localhost/certscope:dev
#
# The base (Debian bookworm, minbase, python3 + venv) is made once and kept as
# localhost/certscope-base:bookworm and as a tarball under ${XDG_CACHE_HOME:-~/.cache}/certscope;
# the Dockerfile's PYTHON_IMAGE build argument selects it. The host's CA bundle and pip
# configuration are mounted into the build's RUN steps only (never into the image), so pip
# reaches the package index through whatever TLS interception the host trusts.
# Old images of TAG are removed after a successful build.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG="${1:-localhost/certscope:dev}"
BASE="localhost/certscope-base:bookworm"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/certscope"
BASE_TAR="$CACHE/debian-bookworm-python3-rootfs.tar"
B=(buildah --storage-driver vfs)

for cmd in buildah debootstrap; do
  command -v "$cmd" >/dev/null 2>&1 \
    || { echo "build-image: $cmd is missing (Debian package $cmd; make system-deps)" >&2; exit 1; }
done

if ! "${B[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
  if [ ! -f "$BASE_TAR" ]; then
    root="$(mktemp -d)"
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
      bookworm "$root/rootfs" http://deb.debian.org/debian >"$root/debootstrap.log" 2>&1 \
      || { tail -n 20 "$root/debootstrap.log" >&2; echo "build-image: debootstrap failed" >&2; exit 1; }
    mkdir -p "$CACHE"
    tar -C "$root/rootfs" -cf "$BASE_TAR.partial" .
    mv "$BASE_TAR.partial" "$BASE_TAR"
    rm -rf "$root"
  fi
  ctr="$("${B[@]}" from scratch)"
  "${B[@]}" add "$ctr" "$BASE_TAR" / >/dev/null
  "${B[@]}" commit -q "$ctr" "$BASE" >/dev/null
  "${B[@]}" rm "$ctr" >/dev/null
fi

mounts=()
for f in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf; do
  [ -f "$f" ] && mounts+=(-v "$f:$f:ro")
done
"${B[@]}" bud --isolation chroot --format docker --layers "${mounts[@]}" \
  --build-arg "PYTHON_IMAGE=$BASE" \
  --build-arg "REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  -t "$TAG" . >&2
"${B[@]}" rmi --prune >/dev/null 2>&1 || true
echo "$TAG"
