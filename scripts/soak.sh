#!/usr/bin/env bash
# Soak test of retention (make soak): `edgelog run` receives SOAK_RATE
# events/s (default 1000, in concurrent publishes of 100) over the HTTP API
# for SOAK_SECONDS (default 600) into a stream with maxSize SOAK_MAXSIZE
# (default 50MB). Every 5 s scripts/soakload samples the data directory's
# disk usage, the node's RSS and the stream's floor, count and bytes, and
# every 0.25 s the directory's usage alone (a compaction's peak lasts about
# a second). It passes if the data directory stays under 1.5x the limit and the RSS is flat:
# once the stream is full, the lowest RSS of the last third of the samples
# within 1.25x of the middle third's (Badger's compactions make it spike for
# a few seconds; a leak lifts the troughs; the first third warms the caches).
# Bounded: the node is stopped at the end or on any error.
#
# With SOAK_LOG=debug the node logs each drop of expired records, and the
# summary shows how many there were and how long writes waited for them.
#
# Usage: scripts/soak.sh
#   SOAK_SECONDS=900 SOAK_RATE=1000 SOAK_MAXSIZE=50MB SOAK_MEMTABLE=8MiB SOAK_PROFILE=low-memory SOAK_LOG=debug scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${SOAK_SECONDS:-600}
rate=${SOAK_RATE:-1000}
maxsize=${SOAK_MAXSIZE:-50MB}
memtable=${SOAK_MEMTABLE:-8MiB}
profile=${SOAK_PROFILE:-auto}
payload=${SOAK_PAYLOAD:-300}
loglevel=${SOAK_LOG:-info}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgelog-soak.XXXXXX")
pid=
cleanup() {
  if [[ -n $pid ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -trimpath -o "$tmp/edgelog" ./cmd/edgelog
go build -o "$tmp/soakload" ./scripts/soakload
limit=$(python3 - "$maxsize" <<'PY'
import re, sys
units = {"B": 1, "kB": 1000, "KB": 1000, "KiB": 1024, "MB": 10**6, "MiB": 2**20, "GB": 10**9, "GiB": 2**30}
m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", sys.argv[1])
if not m or (m.group(2) or "B") not in units:
    sys.exit("SOAK_MAXSIZE: want a size like 50MB")
print(int(float(m.group(1)) * units[m.group(2) or "B"]))
PY
)

cat >"$tmp/config.yaml" <<YAML
data: $tmp/data
api: 127.0.0.1:0
replication: {enabled: false}
storage: {memTableSize: $memtable, profile: $profile}
streams:
  telemetry: {maxSize: $maxsize}
routes:
  - {from: "'telemetry'", into: telemetry}
log: {level: $loglevel}
YAML

"$tmp/edgelog" run --config "$tmp/config.yaml" >"$tmp/out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  grep -q "API listening on" "$tmp/out" 2>/dev/null && break
  sleep 0.1
done
url=$(sed -n 's/.*API listening on \(http:[^ ]*\).*/\1/p' "$tmp/out" | head -1)
[[ -n $url ]] || { echo "edgelog run did not start:"; cat "$tmp/out"; exit 1; }

echo "memTableSize $memtable, profile $profile; edgelog $(git describe --always --dirty 2>/dev/null || echo dev)"
status=0
"$tmp/soakload" -url "$url" -pid "$pid" -data "$tmp/data" -limit "$limit" -rate "$rate" -seconds "$secs" -payload "$payload" || status=$?
echo "compactions after pruning: $(grep -c 'compacted the database after pruning' "$tmp/out" || true)"
if [[ $loglevel == debug ]]; then
  sed -n 's/.*msg="dropped expired records".* took=\([^ ]*\).*/\1/p' "$tmp/out" | python3 -c '
import re, statistics, sys
units = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1, "s": 1000, "m": 60000, "h": 3600000}
def ms(d):
    return sum(float(v) * units[u] for v, u in re.findall(r"([0-9.]+)(ns|µs|us|ms|s|m|h)", d))
t = sorted(ms(l.strip()) for l in sys.stdin if l.strip())
if t:
    print(f"drops of expired records: {len(t)}, writes waited median {statistics.median(t):.0f} ms, max {t[-1]:.0f} ms")
else:
    print("drops of expired records: 0")
'
fi
grep -E 'level=(WARN|ERROR)' "$tmp/out" | grep -v 'Unable to fill tables' | tail -5 || true
exit "$status"
