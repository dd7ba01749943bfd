#!/usr/bin/env bash
# Measures the idle resident memory of `edgelog run` (fresh data dir, API on
# a free loopback port) after it has settled, and the binary's size. Bounded:
# the node is stopped after at most ~30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/edgelog" ./cmd/edgelog
"$tmp/edgelog" run --data "$tmp/data" --api 127.0.0.1:0 >"$tmp/out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  grep -q "API listening on" "$tmp/out" 2>/dev/null && break
  sleep 0.1
done
grep -q "API listening on" "$tmp/out" || { echo "edgelog run did not start:"; cat "$tmp/out"; exit 1; }
sleep 5 # let start-up allocations settle
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
size=$(stat -c %s "$tmp/edgelog")
printf '| idle RSS of edgelog run (default profile) | %d KiB | – | – |\n' "$rss"
printf '| binary size, linux/%s, static, stripped | %d KiB | – | – |\n' "$(go env GOARCH)" "$((size / 1024))"
