#!/usr/bin/env bash
# Footprint of edgelog on a device, as a Markdown table:
#  - idle RSS of `edgelog run` in the low-memory profile (target < 30 MB),
#  - peak RSS (VmHWM) while ingesting EVENTS events through the HTTP API
#    (default 1M, in publishes of 2000 events; target < 150 MB),
#  - binary sizes per architecture from scripts/cross.sh (into dist/).
# Bounded: the run gives up after BENCH_TIMEOUT seconds (default 900).
# Usage: scripts/bench-footprint.sh      Env: EVENTS, BENCH_TIMEOUT, SKIP_CROSS=1
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-1000000}
per=2000
deadline=$((SECONDS + ${BENCH_TIMEOUT:-900}))
command -v curl >/dev/null || { echo "bench-footprint: needs curl" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
[ -z "${FOOTPRINT_LOG:-}" ] || trap 'cp "$tmp/out" "$FOOTPRINT_LOG" 2>/dev/null; cleanup' EXIT
left() { echo $((deadline - SECONDS)); }
check_time() { [ "$(left)" -gt 0 ] || { echo "bench-footprint: out of time" >&2; exit 1; }; }

CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/edgelog" ./cmd/edgelog

# The low-memory profile, chosen by EDGELOG_PROFILE; it sets its own Go
# memory limit unless GOMEMLIMIT is given.
echo 'durability: sync' >"$tmp/config.yaml"
start_node() {
  EDGELOG_PROFILE=low-memory \
    "$tmp/edgelog" run --config "$tmp/config.yaml" --data "$tmp/data" --api 127.0.0.1:0 >"$tmp/out" 2>&1 &
  pid=$!
  local until=$((SECONDS + 30))
  until grep -q "API listening on" "$tmp/out" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "edgelog run exited:"; cat "$tmp/out"; exit 1; }
    [ $SECONDS -lt $until ] || { echo "edgelog run did not start in 30 s:"; cat "$tmp/out"; exit 1; }
    sleep 0.1
  done
}
start_node
profile=$(grep -o 'profile=[a-z-]*' "$tmp/out" | head -1 || true)
[ "$profile" = profile=low-memory ] || { echo "the node did not choose the low-memory profile:"; cat "$tmp/out"; exit 1; }
addr=$(grep -o 'API listening on [^ ]*' "$tmp/out" | head -1 | awk '{print $4}')
addr=${addr#http://}
addr=${addr%%/*}
[ -n "$addr" ] || { echo "cannot find the API address in:"; cat "$tmp/out"; exit 1; }
base=http://$addr/api/v2

status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
# Idle: sample RSS for 5 s after start-up and report the last sample (the
# node does nothing then; the samples show whether it is still growing).
samples=()
for _ in 1 2 3 4 5 6 7 8 9 10; do samples+=("$(status VmRSS)"); sleep 0.5; done
idle=${samples[-1]}

token=$(curl -sf "$base/auth" -d '{"appId":"com.example.bench","displayName":"bench","version":"1"}' | sed -n 's/.*"token" *: *"\([^"]*\)".*/\1/p')
[ -n "$token" ] || { echo "no token"; exit 1; }
# One request body of $per events (tags and payload like a sensor reading).
{
  printf '{"data":['
  for ((i = 0; i < per; i++)); do
    [ $i -gt 0 ] && printf ','
    printf '{"tags":["machine:%d","temperature"],"payload":{"value":%d.5,"unit":"C","seq":%d}}' $((i % 8)) $((i % 90)) "$i"
  done
  printf ']}'
} >"$tmp/body.json"
# Sample the anonymous (heap) and file-backed (mapped database files) parts
# of the resident size while ingesting; VmHWM only knows their sum.
( while kill -0 "$pid" 2>/dev/null; do
    awk '$1 == "RssAnon:" {a=$2} $1 == "RssFile:" {f=$2} END {print a, f}' "/proc/$pid/status" 2>/dev/null
    sleep 0.2
  done >"$tmp/samples" ) &
sampler=$!
t0=$SECONDS
for ((sent = 0; sent < events; sent += per)); do
  check_time
  curl -sf --max-time 60 -H "Authorization: Bearer $token" "$base/events/publish" --data-binary @"$tmp/body.json" -o /dev/null ||
    { echo "publish failed after $sent events"; tail -20 "$tmp/out"; exit 1; }
done
secs=$((SECONDS - t0))
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
peak_anon=$(awk '$1 > m {m = $1} END {print m + 0}' "$tmp/samples")
peak_file=$(awk '$2 > m {m = $2} END {print m + 0}' "$tmp/samples")
peak=$(status VmHWM)
after=$(status VmRSS)
anon=$(status RssAnon)
file=$(status RssFile)
got=$(curl -sf -H "Authorization: Bearer $token" "$base/events/offsets" | sed -n 's/.*"present" *: *{"[^"]*" *: *\([0-9]*\).*/\1/p')
[ "$got" = $((events - 1)) ] || { echo "node holds offset ${got:-none}, want $((events - 1))"; exit 1; }

if [ "${SKIP_CROSS:-}" != 1 ]; then
  check_time
  scripts/cross.sh bench >/dev/null
fi

mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k * 1024 / 1e6 }'; }
echo
echo "| figure | value | target |"
echo "| --- | --- | --- |"
printf '| idle RSS of edgelog run, low-memory profile (%s) | %s | < 30 MB |\n' "${profile:-profile not logged}" "$(mb "$idle")"
printf '| peak RSS while ingesting %d events over HTTP (%d per publish, durable) | %s | < 150 MB |\n' "$events" "$per" "$(mb "$peak")"
printf '| peak anonymous RSS (Go heap, memtables, caches) while ingesting, sampled every 0.2 s | %s | – |\n' "$(mb "$peak_anon")"
printf '| peak file-backed RSS (code of the binary, memory-mapped database files; the kernel reclaims it under pressure) | %s | – |\n' "$(mb "$peak_file")"
printf '| RSS after ingesting: anonymous (heap) + file-backed (mapped database files, reclaimable) | %s = %s + %s | – |\n' "$(mb "$after")" "$(mb "$anon")" "$(mb "$file")"
printf '| ingest time | %d s (%d events/s) | – |\n' "$secs" $((events / (secs > 0 ? secs : 1)))
if [ "${SKIP_CROSS:-}" != 1 ]; then
  for f in dist/edgelog-linux-*; do
    printf '| binary size, %s (static, stripped) | %s | – |\n' "${f#dist/edgelog-}" "$(awk -v b="$(stat -c %s "$f")" 'BEGIN { printf "%.1f MB", b / 1e6 }')"
  done
fi
echo "idle RSS samples (KiB, every 0.5 s): ${samples[*]}" >&2
