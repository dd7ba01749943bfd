#!/usr/bin/env bash
# Prepares the build of edgelog for 32-bit targets (GOARCH=arm, 386) with
# ristretto's z.Allocator fixed (arm/patches/ristretto-allocator-32bit.patch
# says why) and prints the path of an alternate go.mod on stdout; everything
# else goes to stderr. Build with it through `-modfile`:
#
#   modfile=$(scripts/patch-32bit.sh)
#   GOARCH=arm GOARM=7 go build -modfile "$modfile" ./cmd/edgelog
#
# How: the ristretto module of the version go.mod selects is copied from the
# module cache to the cache directory, the committed patch is applied with
# `patch` (the script fails if it does not apply cleanly), and the alternate
# go.mod is the repository's go.mod plus one `replace` of that exact version
# by the patched copy (with a copy of go.sum next to it). Neither the module
# cache nor the repository's go.mod/go.sum is modified. (`go build -overlay`
# cannot be used: Go refuses overlays of files in the module cache.)
#
# Cache directory: $EDGELOG_CACHE_DIR (default: .cache/ in the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
mod=github.com/dgraph-io/ristretto/v2
patchfile=$repo/arm/patches/ristretto-allocator-32bit.patch
buggy='atomic.StoreUint64(&a.compIdx, uint64((bufIdx+1)<<32))'

die() { echo "patch-32bit: $*" >&2; exit 1; }
command -v patch >/dev/null || die "the 'patch' program is missing (apt-get install patch)"
[ -f "$patchfile" ] || die "missing $patchfile"

# The version go.mod selects, and its source (downloaded if needed).
version=$(go list -m -f '{{.Version}}' "$mod") || die "$mod is not in the build list"
dir=$(go list -m -f '{{.Dir}}' "$mod")
if [ -z "$dir" ] || [ ! -f "$dir/z/allocator.go" ]; then
  go mod download "$mod" >&2
  dir=$(go list -m -f '{{.Dir}}' "$mod")
fi
[ -f "$dir/z/allocator.go" ] || die "cannot find $mod $version in the module cache"

cache=${EDGELOG_CACHE_DIR:-$repo/.cache}/patch-32bit
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
modfile=$cache/go.32bit.mod

if ! grep -qF "$buggy" "$dir/z/allocator.go"; then
  # A release with the fix (or a reworked file): build unpatched, but say so
  # loudly, since the patch and this script should then be removed.
  echo "patch-32bit: $mod $version no longer contains the 32-bit bug line; building it unpatched (remove the patch?)" >&2
  cp "$repo/go.mod" "$modfile.tmp" && mv -f "$modfile.tmp" "$modfile"
  cp "$repo/go.sum" "$cache/go.32bit.sum"
  echo "$modfile"
  exit 0
fi

# The patched copy is rebuilt when missing or when the patch changed.
dst=$cache/ristretto-$version
stamp=$(sha256sum "$patchfile" | cut -d' ' -f1)
if [ ! -f "$dst/.edgelog-patched" ] || [ "$(cat "$dst/.edgelog-patched")" != "$stamp" ]; then
  work=$(mktemp -d "$cache/work.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  cp -R "$dir/." "$work/"
  chmod -R u+w "$work"
  if ! (cd "$work" && patch --batch --forward --silent -p1 --no-backup-if-mismatch -r - <"$patchfile" >&2); then
    die "$patchfile does not apply to $mod $version ($dir); update the patch for this version"
  fi
  grep -qF "$buggy" "$work/z/allocator.go" && die "the patched file still contains the bug line"
  echo "$stamp" >"$work/.edgelog-patched"
  rm -rf "$dst"
  mv "$work" "$dst"
  echo "patch-32bit: $mod $version: z/allocator.go patched in $dst" >&2
fi

# go.mod and go.sum are re-copied every time, so dependency changes made by
# others are always picked up.
cp "$repo/go.mod" "$modfile.tmp"
go mod edit -replace="$mod@$version=$dst" "$modfile.tmp"
mv -f "$modfile.tmp" "$modfile"
cp "$repo/go.sum" "$cache/go.32bit.sum"
echo "$modfile"
