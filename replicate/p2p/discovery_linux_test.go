package p2p

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

const netnsEnv = "EDGELOG_TEST_IN_NETNS"

// inFreshNetns runs the calling test again in a network namespace of its
// own, whose loopback carries multicast, so that mDNS traffic stays there.
// It returns true in the parent (which has checked the child's result) and
// false in the child, which goes on with the test.
func inFreshNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == "1" {
		for _, args := range [][]string{
			{"link", "set", "lo", "up", "multicast", "on"},
			{"route", "add", "224.0.0.0/4", "dev", "lo"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		return false
	}
	if testing.Short() {
		t.Skip("network namespace test")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1", "-test.timeout=80s")
	cmd.Env = append(os.Environ(), netnsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	if err != nil {
		// EINVAL: qemu-user (make test-arm) does not emulate clone with
		// CLONE_NEWNET; the native run covers the test.
		if strings.Contains(err.Error(), "operation not permitted") || errors.Is(err, syscall.EINVAL) {
			t.Skipf("cannot create a network namespace: %v", err)
		}
		t.Fatalf("%s in its own network namespace: %v\n%s", t.Name(), err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s did not pass in its network namespace:\n%s", t.Name(), out)
	}
	t.Logf("passed in its own network namespace")
	return true
}

// TestMDNSDiscovery: nodes of one swarm find and connect to each other by
// mDNS alone, with no bootstrap peers; a node of another swarm is not
// dialled.
func TestMDNSDiscovery(t *testing.T) {
	if inFreshNetns(t) {
		return
	}
	start := func(swarm string) *testNode {
		o := newOrigin(t)
		tn := &testNode{o: o, store: newMemStore()}
		svc, err := Start(context.Background(), Config{
			Key: o.Key, Store: tn.store, Swarm: swarm, MDNS: true,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
			Logger:      slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		tn.svc = svc
		t.Cleanup(func() { svc.Close() })
		return tn
	}
	a, b, other := start("lan"), start("lan"), start("elsewhere")
	connected := func(x, y *testNode) bool {
		return x.svc.Host().Network().Connectedness(y.svc.Host().ID()) == network.Connected
	}
	waitFor(t, 30*time.Second, "A and B connected by mDNS", func() bool { return connected(a, b) })
	// Replication runs over the connection mDNS made.
	a.store.Publish(t, rand.New(rand.NewPCG(4, 4)), a.o, 5)
	waitFor(t, 10*time.Second, "A's events at B", func() bool { return holdsAll([]*testNode{b}, a) })
	if connected(a, other) || connected(b, other) {
		t.Fatal("a node of another swarm was dialled")
	}
}
