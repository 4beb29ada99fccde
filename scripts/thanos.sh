#!/usr/bin/env bash
# Build Thanos from its Go module once per version and print the binary's path.
#
# Thanos' go.mod carries replace directives, so `go install module@version` refuses it; the module is
# downloaded through the module proxy and built from its own directory, where those directives apply.
# The binary is kept in .cache/thanos/<version>/ (ignored by git); the Go build cache makes a rebuild
# after `rm -rf .cache` fast.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${THANOS_VERSION:-v0.42.0}"
GO="${GO:-go}"
out="$PWD/.cache/thanos/$VERSION/thanos"
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
(cd "$dir" && GOFLAGS=-mod=mod CGO_ENABLED=0 "$GO" build -trimpath -o "$out.tmp" ./cmd/thanos)
mv "$out.tmp" "$out"
echo "thanos.sh: built thanos $VERSION in $(( $(date +%s) - start ))s" >&2
echo "$out"
