#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each.
# Usage: scripts/fuzz.sh [DURATION]   (default 10s per target)
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-10s}
go list -f '{{.Dir}} {{.ImportPath}}' ./... | while read -r dir pkg; do
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $f for $t"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg"
  done
done
