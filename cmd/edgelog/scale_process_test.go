package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/api/client"
)

var scaleProcNodes = flag.Int("netns.nodes", 6, "TestSwarmScaleProcess: number of edgelog processes (make bench-scale runs 20 and 40)")

// TestSwarmScaleProcess measures replication between real `edgelog run`
// processes, each in its own network namespace, bootstrapped into a sparse
// graph (each to the node started before it and one random earlier one;
// no mDNS), reading every host's bytes from its veth's counters:
//   - idle: bytes each node receives per second over 30 s once all hold
//     the same;
//   - burst: every node publishes 100 events of about 100 bytes at once:
//     how long until every node holds all (real time), and what each node
//     received for it (until 5 s after, less idle) per byte stored.
//
// It checks convergence and prints the figures; make test runs it with 6
// nodes, make bench-scale with 20 and 40 (-netns.nodes).
func TestSwarmScaleProcess(t *testing.T) {
	needNetns(t)
	n := *scaleProcNodes
	if n < 2 || n > 60 {
		t.Fatalf("-netns.nodes=%d: want 2 to 60 (the lab's addressing)", n)
	}
	lab := newNetnsLab(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	clients := make([]*client.Client, n)
	ids := make([]string, n)
	for i, h := range lab.hosts {
		h.extra = []string{"--mdns=false"}
		if i > 0 {
			h.bootPeer = []string{lab.hosts[i-1].p2pAddr(ids[i-1])}
		}
		if i > 1 {
			j := rng.IntN(i - 1)
			h.bootPeer = append(h.bootPeer, lab.hosts[j].p2pAddr(ids[j]))
		}
		clients[i], ids[i] = h.startClient(ctx, "scale")
	}
	publish := func(count int, tag string) int64 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var stored int64
		for i, c := range clients {
			wg.Go(func() {
				evs := make([]client.PublishEvent, count)
				for j := range evs {
					evs[j] = client.PublishEvent{Tags: []string{tag}, Payload: json.RawMessage(fmt.Sprintf(`{"node":%d,"n":%d,"pad":%q}`, i, j, strings.Repeat("x", 60)))}
				}
				if _, err := c.Publish(ctx, evs); err != nil {
					t.Errorf("node %d: publish: %v", i, err)
				}
				mu.Lock()
				for _, e := range evs {
					stored += int64(len(e.Payload) + 64) // payload and about its metadata
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		return stored
	}
	converged := func(what string, streams int) time.Duration {
		start := time.Now()
		waitChaos(t, lab, 5*time.Minute, what, func() bool {
			o, ok := agreed(ctx, clients)
			return ok && len(o) >= streams
		})
		return time.Since(start)
	}
	publish(1, "warm")
	converged("warm-up", n)
	time.Sleep(10 * time.Second)

	const idle = 30 * time.Second
	before := lab.received()
	time.Sleep(idle)
	after := lab.received()
	idleRates := make([]float64, n)
	for i := range n {
		idleRates[i] = float64(after[i]-before[i]) / idle.Seconds()
	}

	before = lab.received()
	start := time.Now()
	stored := publish(100, "burst")
	converged("burst", n)
	took := time.Since(start)
	time.Sleep(5 * time.Second)
	window := time.Since(start)
	after = lab.received()
	burst := make([]float64, n)
	for i := range n {
		burst[i] = (float64(after[i]-before[i]) - idleRates[i]*window.Seconds()) / float64(stored)
	}
	for _, h := range lab.hosts {
		if dead, how := h.died(); dead {
			t.Fatalf("host %d's edgelog died (%s)\n%s", h.i, how, lab.logTails(30))
		}
	}
	t.Logf("%d processes: idle received per node %.0f B/s (max %.0f); burst of 100 events on every node: all hold all after %v, received per node %.2fx the bytes stored beyond idle (max %.2fx)",
		n, meanOf(idleRates), slices.Max(idleRates), took.Round(10*time.Millisecond), meanOf(burst), slices.Max(burst))
}

// received returns the bytes each host has received on its swarm link:
// what its veth's bridge end transmitted.
func (lab *netnsLab) received() []int64 {
	lab.t.Helper()
	out, err := exec.Command("ip", "-n", lab.sw, "-s", "-j", "link", "show").Output()
	if err != nil {
		lab.t.Fatalf("ip -s link: %v", err)
	}
	var links []struct {
		Name  string `json:"ifname"`
		Stats struct {
			TX struct {
				Bytes int64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		lab.t.Fatalf("ip -s -j link: %v", err)
	}
	got := make([]int64, len(lab.hosts))
	for _, l := range links {
		var i int
		if _, err := fmt.Sscanf(l.Name, "p%d", &i); err == nil && i < len(got) {
			got[i] = l.Stats.TX.Bytes
		}
	}
	return got
}

func meanOf(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
