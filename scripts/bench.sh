#!/usr/bin/env bash
# Runs edgelog's benchmarks and prints each figure next to the raw Badger
# baseline measured in the same run, as a ratio.
# Usage: scripts/bench.sh [BENCHTIME]   (default 3s; e.g. 10x or 5s)
set -euo pipefail
cd "$(dirname "$0")/.."
bt=${1:-3s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
repl='CatchUp|LiveLatency|Convergence10' # bounded work per run: once each (-benchtime 1x)
echo "== go test -run '^\$' -bench . -skip '$repl' -benchtime $bt ./store/" >&2
go test -run '^$' -bench . -skip "$repl" -benchtime "$bt" -timeout 60m ./store/ | tee "$out" >&2
echo "== go test -run '^\$' -bench '$repl' -benchtime 1x ./node/" >&2
go test -run '^$' -bench "$repl" -benchtime 1x -timeout 60m ./node/ | tee -a "$out" >&2

rate() { awk -v n="Benchmark$1" '$1 ~ "^"n"(-[0-9]+)?$" { for (i=1;i<=NF;i++) if ($(i+1)=="events/s") print $i }' "$out" | tail -1; }
metric() { awk -v n="Benchmark$1" -v m="$2" '$1 ~ "^"n"(-[0-9]+)?$" { for (i=1;i<=NF;i++) if ($(i+1)==m) print $i }' "$out" | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b>0) printf "%.2fx", a/b; else print "n/a" }'; }

raw1000=$(rate RawBadgerBatch1000Sync); pub1000=$(rate PublishBatch1000Sync)
rawone=$(rate RawBadgerOneFsyncPerEvent); conc=$(rate PublishConcurrent64Sync)
rawscan=$(rate RawBadgerScan1M); q=$(rate QueryTag1M); qsel=$(rate QuerySelectiveTag1M)
disk=$(metric QueryTag1M disk-bytes/event)

echo
echo "| figure | edgelog | baseline (same run) | ratio |"
echo "| --- | --- | --- | --- |"
printf '| publish, batches of 1000, durable | %.0f ev/s | raw Badger txn of 1000, SyncWrites: %.0f ev/s | %s (target >= 0.5x) |\n' "$pub1000" "$raw1000" "$(ratio "$pub1000" "$raw1000")"
printf '| 64 concurrent publishers of 1 event, durable | %.0f ev/s | raw Badger, one fsync per event: %.0f ev/s | %s (target >= 20x) |\n' "$conc" "$rawone" "$(ratio "$conc" "$rawone")"
printf '| tag query, 1M-event store, decoded | %.0f ev/s | raw Badger scan with value copy: %.0f ev/s | %s (target >= 1M ev/s) |\n' "$q" "$rawscan" "$(ratio "$q" "$rawscan")"
printf '| selective tag query (1%%) via tag index | %.0f ev/s | raw Badger scan: %.0f ev/s | %s |\n' "$qsel" "$rawscan" "$(ratio "$qsel" "$rawscan")"
printf '| disk bytes per event (100-byte payload, 2 tags) | %.0f B | payload 100 B | %s |\n' "$disk" "$(ratio "$disk" 100)"

catchup=$(rate CatchUp); rawcopy=$(metric CatchUp raw-events/s)
printf '| catch-up: B pulls %s events from A (2 processes, loopback TCP, B durable) | %.0f ev/s | raw loopback TCP copy of the same bytes: %.0f ev/s | %s (target >= 300k ev/s) |\n' \
	"${EDGELOG_BENCH_CATCHUP_EVENTS:-1000000}" "$catchup" "$rawcopy" "$(awk -v a="$catchup" -v b="$rawcopy" 'BEGIN { if (b>0) printf "%.4fx", a/b; else print "n/a" }')"
for d in async sync; do
	for p in direct relay; do
		printf '| live latency, 1k ev/s, %s peer, %s durability | p50 %s ms, p99 %s ms | - | %s |\n' "$p" "$d" \
			"$(metric "LiveLatency/$d/$p" p50-ms)" "$(metric "LiveLatency/$d/$p" p99-ms)" \
			"$([ "$p" = direct ] && echo 'target p50 <= 2 ms, p99 <= 10 ms' || echo 'target p99 <= 50 ms')"
	done
done
printf '| convergence: 10 nodes, halves healed, 1k events each | %s s | - | target < 5 s |\n' "$(metric Convergence10 converge-s)"
if [ -x scripts/rss.sh ]; then scripts/rss.sh; fi
