# edgelog — see README.md. Every target installs what it needs.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PKGS := ./...
# staticcheck is run at a pinned version; go run fetches it through the module proxy once.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build run test bench-scale test-cluster test-arm-quick test-short test-faults-short test-chaos test-hostile bench bench-footprint lint verify cross test-arm fuzz soak clean

all: build

## build: the edgelog binary for this machine, into bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/edgelog ./cmd/edgelog

## run: a node with the default settings (data in ./edgelog-data, API on 127.0.0.1:4454)
run:
	$(GO) run ./cmd/edgelog run

# The fault suites' tests: run apart from the rest by test, so that their figures are printed.
FAULT_TESTS := ^(TestChaos|TestHostileInput|TestLyingPeerProcess|TestClockSkewProcess|TestSwarmScaleProcess|TestMixedVersions)$$

## test: verify (format, vet, staticcheck, tidy), every test with the race detector, the fault suites' short forms,
## short fuzz runs, the netns cluster (as root), and the storage, clock and replication tests for armv7 and arm64 under qemu
test: verify
	$(GO) test -race -count=1 -timeout 15m -skip '$(FAULT_TESTS)' $(PKGS)
	$(MAKE) test-faults-short
	./scripts/fuzz.sh 10s
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) test-cluster; else echo "test-cluster skipped: network namespaces need root"; fi
	$(MAKE) test-arm-quick

## test-arm-quick: test-arm with 100k events in the restart proof and -short (CI's pass, ~5 min)
test-arm-quick:
	EDGELOG_ARM_EVENTS=100000 ARM_TEST_SHORT=1 ./scripts/test-arm.sh armv7 arm64

## test-cluster: three `edgelog run` nodes in network namespaces: mDNS, cut, heal, converge (root)
test-cluster: build
	EDGELOG_BIN=bin/edgelog timeout 300 ./scripts/netns-cluster.sh

## test-faults-short: the chaos suite (3 nodes, 20 s of faults), the lying peer, the skewed clocks, 6 processes' replication
## bytes, a swarm mixing this version with the last before the sync protocol (these need root) and the hostile-input suite
## (1500 requests), with the race detector, printing their seeds and figures
test-faults-short:
	set -o pipefail; $(GO) test -race -count=1 -timeout 10m -run '$(FAULT_TESTS)' -v ./cmd/edgelog | grep -E '^(=== RUN|--- |    |PASS|FAIL|ok)'

## test-chaos: the chaos suite's long form: 5 nodes, 3 minutes of SIGKILLs and partitions under load (root; ~4 min)
test-chaos:
	$(GO) test -count=1 -timeout 15m -run '^TestChaos$$' -v ./cmd/edgelog -args -chaos.nodes=5 -chaos.duration=3m

## test-hostile: the hostile-input suite's long form: 30000 generated malformed requests against a live node (~1 min)
test-hostile:
	$(GO) test -count=1 -timeout 10m -run '^TestHostileInput$$' ./cmd/edgelog -v -args -hostile.requests=30000

## test-short: the tests without the race detector (faster local loop)
test-short:
	$(GO) test -count=1 $(PKGS)

## bench: the benchmarks, with figures as ratios to raw Badger (see README)
bench:
	./scripts/bench.sh

## bench-scale: what replication costs as the swarm grows (docs/benchmarks.md): Badger nodes in a full mesh at 5 to 40
## (SCALE_NODES), the protocol at 100 to 1000 (SIM_NODES) on the simulated network in virtual time, and, as root,
## 20 and 40 real processes in network namespaces (NETNS_NODES); about 45 minutes in all
bench-scale:
	$(GO) test -count=1 -timeout 60m -run '^TestSwarmScale$$' -v ./node -args -scale.nodes=$${SCALE_NODES:-5,10,20,40}
	$(GO) test -count=1 -timeout 120m -run '^TestSwarmScaleSim$$' -v ./replicate/p2p -args -sim.nodes=$${SIM_NODES:-100,300,1000}
	@if [ "$$(id -u)" = 0 ]; then for n in $${NETNS_NODES:-20 40}; do \
		$(GO) test -count=1 -timeout 30m -run '^TestSwarmScaleProcess$$' -v ./cmd/edgelog -args -netns.nodes=$$n || exit 1; \
	done; else echo "the netns runs skipped: network namespaces need root"; fi

## bench-footprint: idle and ingest RSS of `edgelog run` (low-memory profile), binary sizes
bench-footprint:
	./scripts/bench-footprint.sh

## lint: gofmt and go vet (the quick part of verify)
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags testclock ./cmd/edgelog

## verify: lint, staticcheck (its default checks, unused code among them) and go.mod/go.sum tidy
verify: lint
	$(GO) run $(STATICCHECK) $(PKGS)
	$(GO) mod tidy -diff

## cross: static binaries for linux amd64, arm64, armv7 into dist/, with checksums
cross:
	./scripts/cross.sh $(VERSION)

## test-arm: the storage, clock and replication tests for armv7 and arm64 under qemu-user-static,
## with the 1M-event restart proof (about 20 minutes; EDGELOG_ARM_EVENTS lowers it)
test-arm:
	./scripts/test-arm.sh

## soak: retention soak, 1k events/s into a maxSize 50MB stream for 10 minutes (SOAK_SECONDS,
## SOAK_RATE, SOAK_MAXSIZE, SOAK_MEMTABLE); checks disk < 1.5x and flat RSS. Not part of test.
soak:
	timeout $$(( $${SOAK_SECONDS:-600} + 300 )) ./scripts/soak.sh

## fuzz: longer fuzz runs (FUZZTIME per target, default 1m)
fuzz:
	./scripts/fuzz.sh $${FUZZTIME:-1m}

clean:
	rm -rf bin dist
