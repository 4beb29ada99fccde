#!/usr/bin/env bash
# Build Thanos from its Go module once per version and print the binary's path.
#
# Thanos' go.mod carries replace directives, so `go install module@version` refuses it; the module is
# downloaded through the module proxy and built from its own directory, where those directives apply.
# The binary is kept in .cache/thanos/<version>/ (ignored by git); the Go build cache makes a rebuild
# after `rm -rf .cache` fast. With --print-path it only prints where the binary of this version is
# (built or not), which is how the fleet test finds it.
#
# The build tags are those of Thanos's own release build (.promu.yml): without slicelabels, Prometheus's
# labels.Labels is the string implementation, Thanos's unsafe label casts read garbage and the sidecar
# panics on its first gRPC answer ("makeslice: len out of range"). v0.41.0 is the release the fleet test
# runs; v0.42.1 and later need a newer Go than this repository's toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${THANOS_VERSION:-v0.41.0}"
GO="${GO:-go}"
# The tags are part of the key: a binary built without them is never reused.
out="$PWD/.cache/thanos/$VERSION-slicelabels/thanos"
if [ "${1:-}" = "--print-path" ]; then
  echo "$out"
  exit 0
fi
if [ -x "$out" ] && "$out" --version >/dev/null 2>&1; then
  echo "$out"
  exit 0
fi
mkdir -p "$(dirname "$out")"
dir=$(GOFLAGS=-mod=mod "$GO" mod download -json "github.com/thanos-io/thanos@$VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$dir" ]; then
  echo "thanos.sh: could not download github.com/thanos-io/thanos@$VERSION" >&2
  exit 1
fi
start=$(date +%s)
(cd "$dir" && CGO_ENABLED=0 "$GO" build -trimpath -tags netgo,slicelabels -o "$out.tmp" ./cmd/thanos)
mv "$out.tmp" "$out"
echo "thanos.sh: built thanos $VERSION in $(( $(date +%s) - start ))s" >&2
echo "$out"
