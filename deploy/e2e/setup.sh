#!/usr/bin/env bash
# Installs what the deployment tests (deploy/e2e, `make e2e`) need, once; a second run changes
# nothing. Network is used here only, never by the tests:
#   - podman, debootstrap and runc (Debian packages);
#   - the Dockerfile's Debian base image, made with debootstrap --variant=minbase from the mirror apt
#     already uses and imported under the tag the Dockerfile names (no image registry is needed);
#   - the Dockerfile's "base" stage (apt-get install ca-certificates), cached by podman, so that the
#     test builds the image with --network none;
#   - the Go modules of deploy/e2e, of deploy/e2e/servers (kube-apiserver and etcd) and the
#     Prometheus Operator module whose CRD manifests the chart test installs.
set -euo pipefail
cd "$(dirname "$0")/../.."

sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

missing=
for c in podman debootstrap runc; do command -v "$c" >/dev/null 2>&1 || missing=1; done
if [ -n "$missing" ]; then
  echo "e2e setup: installing podman, debootstrap and runc"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq podman debootstrap runc >/dev/null
fi

export BUILDAH_ISOLATION=chroot
base=$(sed -n 's/^FROM \(debian:[^ ]*\) AS base$/\1/p' Dockerfile)
[ -n "$base" ] || { echo "e2e setup: no 'FROM debian:... AS base' line in the Dockerfile" >&2; exit 1; }
ref="docker.io/library/$base"
if ! podman image exists "$ref"; then
  tag=${base#debian:}
  release=${tag%%-*}
  mirror=$(sed -n 's/^URIs: *\([^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
  [ -n "$mirror" ] || mirror=$(sed -n 's/^deb \([^ ]*\/debian\) .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n1)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  rootfs=.cache/debian/$release-rootfs
  echo "e2e setup: debootstrap --variant=minbase $release from $mirror, imported as $ref"
  $sudo rm -rf "$rootfs"
  mkdir -p .cache/debian
  $sudo debootstrap --variant=minbase "$release" "$rootfs" "$mirror" >.cache/debian/debootstrap.log
  $sudo tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$ref" >/dev/null
  $sudo rm -rf "$rootfs"
fi
# The base stage's layers (apt-get needs the network); cached, so later builds run offline.
podman build -q --pull=never --target base -t localhost/aiwatt-base:e2e . >/dev/null

(cd deploy/e2e && go mod download)
(cd deploy/e2e/servers && go mod download)
promop=$(sed -n 's/^const promOperatorVersion = "\(.*\)"$/\1/p' deploy/e2e/crds_test.go)
[ -n "$promop" ] || { echo "e2e setup: no promOperatorVersion in deploy/e2e/crds_test.go" >&2; exit 1; }
tmp=$(mktemp -d)
(cd "$tmp" && go mod download github.com/prometheus-operator/prometheus-operator@"$promop")
rmdir "$tmp"
