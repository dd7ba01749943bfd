#!/usr/bin/env bash
# Builds static, stripped, version-stamped edgelog binaries for the edge
# targets into dist/ and writes SHA256SUMS.
# Usage: scripts/cross.sh [VERSION]
# Env:   CROSS_TARGETS  OS/ARCH[/GOARM] list (default: linux/amd64 linux/arm64 linux/arm/7)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
mkdir -p dist
rm -f dist/edgelog-* dist/SHA256SUMS
# 32-bit targets are built with ristretto's z.Allocator fix (see
# arm/patches/ristretto-allocator-32bit.patch): without it Badger loses
# committed events on them.
modfile32=
for target in ${CROSS_TARGETS:-linux/amd64 linux/arm64 linux/arm/7}; do
  IFS=/ read -r os arch arm <<<"$target"
  out=dist/edgelog-$os-$arch${arm:+v$arm}
  flags=()
  case $arch in
    arm | 386)
      [ -n "$modfile32" ] || modfile32=$(scripts/patch-32bit.sh)
      flags=(-modfile "$modfile32") ;;
  esac
  echo "building $out"
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOARM=$arm \
    go build "${flags[@]}" -trimpath -ldflags "-s -w -X main.version=$version" -o "$out" ./cmd/edgelog
done
(cd dist && sha256sum edgelog-* > SHA256SUMS)
ls -l dist
