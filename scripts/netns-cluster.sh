#!/usr/bin/env bash
# Three `edgelog run` processes, each in its own Linux network namespace,
# joined by veth pairs to a bridge that lives in a fourth namespace. They find
# each other by mDNS (no --bootstrap), events are published through the CLI,
# one node is cut off by taking its link down, both sides publish, the link
# comes back, and every node must show the identical `events query` output.
#
# Needs root (network namespaces) and iproute2 (installed if missing).
# Bounded: every wait has a deadline (NETNS_CLUSTER_WAIT seconds, default 60)
# and every CLI call a timeout; `make test-cluster` also wraps the whole run
# in timeout(1). Namespaces, processes and data are removed on exit,
# whatever happens. Exit status 0 means converged.
#
# Usage: scripts/netns-cluster.sh            (builds bin/edgelog-netns)
#        EDGELOG_BIN=path/to/edgelog scripts/netns-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."

wait_secs=${NETNS_CLUSTER_WAIT:-60} # per convergence or discovery wait
tag=$$                              # keeps names apart from other runs
sw=elsw$tag                         # the switch namespace, holding the bridge
ns=(eln1$tag eln2$tag eln3$tag)     # the nodes' namespaces
work=$(mktemp -d /tmp/edgelog-netns.XXXXXX)
pids=()

log() { printf '%s netns-cluster: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	log "FAIL: $*"
	for i in 0 1 2; do
		if [ -f "$work/n$i.log" ]; then
			log "--- last lines of node $((i + 1))'s log"
			tail -n 15 "$work/n$i.log" >&2 || true
		fi
	done
	exit 1
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			log "node process $pid did not stop within 10s of SIGTERM; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	for n in "${ns[@]}" "$sw"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

if [ "$(id -u)" -ne 0 ]; then
	echo "netns-cluster: needs root for network namespaces" >&2
	exit 2
fi
if ! command -v ip >/dev/null; then
	log "installing iproute2"
	apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi

bin=${EDGELOG_BIN:-}
if [ -z "$bin" ]; then
	bin=$work/edgelog
	log "building edgelog"
	CGO_ENABLED=0 go build -o "$bin" ./cmd/edgelog
fi

# The network: a bridge in the switch namespace, a veth pair per node.
ip netns add "$sw"
ip -n "$sw" link set lo up
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 type bridge mcast_snooping 0
ip -n "$sw" link set br0 up
for i in 0 1 2; do
	n=${ns[$i]}
	ip netns add "$n"
	ip -n "$n" link set lo up
	ip -n "$sw" link add "p$i" type veth peer name eth0 netns "$n"
	ip -n "$sw" link set "p$i" master br0 up
	ip -n "$n" addr add "10.47.0.$((i + 1))/24" dev eth0
	ip -n "$n" link set eth0 up
	# mDNS sends to 224.0.0.251; without a default route that is unreachable.
	ip -n "$n" route add default dev eth0
done

# inns NODE CMD...: run CMD in node NODE's namespace (0-based).
inns() { local i=$1; shift; ip netns exec "${ns[$i]}" "$@"; }
# cli NODE ARGS...: the edgelog CLI against that node's API (127.0.0.1:4454,
# the default, on the namespace's own loopback).
cli() { local i=$1; shift; inns "$i" timeout 20 "$bin" "$@"; }

for i in 0 1 2; do
	mkdir -p "$work/n$i"
	# Not through a shell function: `ip netns exec` execs edgelog, so $! is
	# edgelog's own PID and cleanup stops the node itself.
	ip netns exec "${ns[$i]}" "$bin" run --data "$work/n$i" --api 127.0.0.1:4454 --swarm netns-cluster \
		--listen /ip4/0.0.0.0/tcp/4455 --log-level debug >"$work/n$i.log" 2>&1 &
	pids+=("$!")
done

# wait_for SECONDS WHAT CMD...: poll CMD until it succeeds or time is up.
wait_for() {
	local secs=$1 what=$2; shift 2
	local deadline=$((SECONDS + secs))
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || die "$what: not within ${secs}s"
		sleep 0.2
	done
}

connected() { # connected NODE COUNT
	local got
	got=$(cli "$1" node info --json 2>/dev/null | grep -o '"connectedNodes":[0-9]*' | cut -d: -f2) || return 1
	[ "${got:-0}" -ge "$2" ]
}

# Query output of every node; equal and holding WANT events?
snapshot() { cli "$1" events query --json "FROM 'netns'" 2>/dev/null; }
converged() { # converged WANT
	local want=$1 ref out i
	ref=$(snapshot 0) || return 1
	[ "$(grep -c '"type":"event"' <<<"$ref")" -eq "$want" ] || return 1
	for i in 1 2; do
		out=$(snapshot "$i") || return 1
		[ "$out" = "$ref" ] || return 1
	done
}

count() { snapshot "$1" | grep -c '"type":"event"' || true; }
holds() { [ "$(count "$1")" -eq "$2" ]; }                  # holds NODE N
holds01() { holds 0 "$1" && holds 1 "$1"; }               # holds01 N

publish() { # publish NODE N LABEL
	local i=$1 n=$2 label=$3 k
	for k in $(seq "$n"); do
		cli "$i" events publish --tag netns --tag "node:$((i + 1))" "{\"label\":\"$label\",\"k\":$k}" >/dev/null ||
			die "publish on node $((i + 1))"
	done
}

start=$SECONDS
for i in 0 1 2; do wait_for 30 "node $((i + 1))'s API" cli "$i" node id >/dev/null 2>&1; done
log "nodes up; waiting for mDNS discovery"
for i in 0 1 2; do wait_for "$wait_secs" "node $((i + 1)) finding both others by mDNS" connected "$i" 2; done
log "all three connected to each other (mDNS) after $((SECONDS - start))s"

for i in 0 1 2; do publish "$i" 5 before; done
wait_for "$wait_secs" "convergence before the cut" converged 15
log "converged on 15 events"

log "cutting node 3 off (link down)"
ip -n "$sw" link set p2 down
publish 0 5 during-1
publish 1 5 during-2
publish 2 5 during-3
wait_for "$wait_secs" "nodes 1 and 2 exchanging events during the cut" holds01 25
sleep 1 # give a leak across the cut the chance to show
n3=$(count 2)
[ "$n3" -eq 20 ] || die "node 3 holds $n3 events while cut off, want 20 (its own 5 new ones and the 15 before)"
log "node 3 is cut off and holds only its own new events ($n3)"

log "healing node 3's link"
heal=$SECONDS
ip -n "$sw" link set p2 up
wait_for "$wait_secs" "convergence after the heal" converged 30
log "all three converged on 30 events, identical query output, $((SECONDS - heal))s after the heal"
log "PASS in $((SECONDS - start))s"
