#!/usr/bin/env bash
# Cross-compiles the tests of the storage, clock, query and event packages
# (and replicate/ when it exists and compiles) for linux/arm (GOARM=7) and
# linux/arm64 (both with the ristretto fixes of third_party/ristretto),
# and runs them under qemu-user-static, including TestManyEventsSurviveRestart
# with 1M events. Installs qemu-user-static with apt-get when it is missing.
#
# Usage: scripts/test-arm.sh [ARCH...]     ARCH: armv7 arm64 386 (default: armv7 arm64)
# Env:   EDGELOG_ARM_EVENTS   events of the restart proof (default 1000000)
#        ARM_TEST_TIMEOUT     limit per test binary (default 20m)
#        ARM_TEST_RUN         -test.run pattern (default: all tests)
#        ARM_TEST_SHORT=1     run with -test.short (skips the multi-node cluster and
#                             soak tests; CI's quick pass, see `make test`)
set -euo pipefail
cd "$(dirname "$0")/.."
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(armv7 arm64)
events=${EDGELOG_ARM_EVENTS:-1000000}
limit=${ARM_TEST_TIMEOUT:-20m}
run=${ARM_TEST_RUN:-.}
short=()
[ "${ARM_TEST_SHORT:-}" != 1 ] || short=(-test.short)

need_qemu() {
  local bin=$1
  command -v "$bin" >/dev/null && return
  echo "installing qemu-user-static (for $bin)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends qemu-user-static >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends qemu-user-static >/dev/null; }
  command -v "$bin" >/dev/null || { echo "test-arm: $bin still missing after installing qemu-user-static" >&2; exit 1; }
}

pkgs=(./lamport/ ./event/ ./aql/ ./chain/ ./store/ ./replicate/ ./replicate/p2p/ ./node/)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=()
summary=()
start_all=$SECONDS
for a in "${arches[@]}"; do
  env=()
  case $a in
    armv7) goarch=arm goarm=7 qemu=qemu-arm-static ;;
    arm64) goarch=arm64 goarm= qemu=qemu-aarch64-static ;;
    386) goarch=386 goarm= qemu=qemu-i386-static
      # qemu-user 7.2 crashes Go's 386 runtime on asynchronous preemption
      # signals ("morestack on gsignal"); this only affects the emulator.
      env=(GODEBUG=asyncpreemptoff=1) ;;
    *) echo "test-arm: unknown arch $a (want armv7, arm64 or 386)" >&2; exit 2 ;;
  esac
  need_qemu "$qemu"
  for p in "${pkgs[@]}"; do
    name=$(basename "$p")
    bin=$tmp/$a-$name.test
    t0=$SECONDS
    echo "== $a $p: build" >&2
    if ! CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm go test -c -o "$bin" "$p"; then
      failed+=("$a $p (build)")
      continue
    fi
    [ -f "$bin" ] || { summary+=("$a $p: no tests"); continue; }
    echo "== $a $p: run under $qemu" >&2
    # Test binaries run in their package directory, as `go test` does.
    log=$tmp/$a-$name.log
    rc=0
    (cd "$p" && env "${env[@]}" EDGELOG_ARM_EVENTS="$events" \
      timeout --kill-after=30s "$limit" "$qemu" "$bin" -test.count=1 -test.timeout="$limit" \
      -test.run="$run" "${short[@]}" -test.v) >"$log" 2>&1 || rc=$?
    grep -E '^(--- FAIL|FAIL|PASS|panic:|fatal error:)|^    (arm|profile)_test.go' "$log" | grep -v '^=== ' >&2 || true
    if [ "$rc" != 0 ]; then
      [ "$rc" = 124 ] && echo "test-arm: $a $p timed out after $limit" >&2
      tail -40 "$log" >&2
      failed+=("$a $p (exit $rc)")
    fi
    summary+=("$a $p: $((SECONDS - t0)) s, exit $rc")
  done
done
echo
printf '%s\n' "${summary[@]}"
echo "total: $((SECONDS - start_all)) s"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
