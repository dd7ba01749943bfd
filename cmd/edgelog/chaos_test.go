package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgelog/edgelog/api/client"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/internal/promises"
)

var (
	chaosSeed     = flag.Uint64("chaos.seed", 0, "TestChaos: the seed to replay (0: a new one)")
	chaosDuration = flag.Duration("chaos.duration", 20*time.Second, "TestChaos: how long faults are thrown")
	chaosNodes    = flag.Int("chaos.nodes", 3, "TestChaos: edgelog processes in the swarm")
)

// chaosStats counts what the driver did.
type chaosStats struct {
	kills, partitions atomic.Int64
	publishFailures   atomic.Int64
}

// TestChaos runs a swarm of real `edgelog run` processes, each in its own
// network namespace, under load from publishers on every node, while a
// driver SIGKILLs and restarts nodes and cuts them off from the swarm at
// random. Then it heals everything, waits for the swarm to converge, and
// checks with internal/promises that every acknowledged event is on every
// node, nothing was stored twice or invented, offsets are gapless, and all
// nodes show one merged order. The seed decides the faults' order and
// timing; the publishers' interleaving is the machine's.
func TestChaos(t *testing.T) {
	needNetns(t)
	n, seed := *chaosNodes, *chaosSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	replay := fmt.Sprintf("go test ./cmd/edgelog -run '^TestChaos$' -v -args -chaos.seed=%d -chaos.duration=%v -chaos.nodes=%d", seed, *chaosDuration, n)
	t.Logf("seed %d (replay: %s)", seed, replay)
	rng := rand.New(rand.NewPCG(seed, 2))
	lab := newNetnsLab(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), *chaosDuration+5*time.Minute)
	defer cancel()

	// First start: the nodes find each other by mDNS; restarts also
	// bootstrap from the others' addresses.
	clients := make([]*client.Client, n)
	ids := make([]string, n)
	for i, h := range lab.hosts {
		clients[i], ids[i] = h.startClient(ctx, "chaos")
	}
	for i, h := range lab.hosts {
		for j, o := range lab.hosts {
			if j != i {
				h.bootPeer = append(h.bootPeer, o.p2pAddr(ids[j]))
			}
		}
	}
	waitChaos(t, lab, 60*time.Second, "every node connected to every other", func() bool {
		for _, c := range clients {
			info, err := c.Info(ctx)
			if err != nil || info.ConnectedNodes < n-1 {
				return false
			}
		}
		return true
	})

	ledger := promises.NewLedger()
	var st chaosStats
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		for p := range 2 {
			wg.Go(func() { chaosPublisher(ctx, clients[i], ledger, &st, fmt.Sprintf("n%d-p%d", i, p), i, stop) })
		}
	}

	// alive fails the test if a node died on its own (a crash, a race).
	alive := func() {
		t.Helper()
		for _, o := range lab.hosts {
			if dead, how := o.died(); dead {
				t.Fatalf("host %d's edgelog died on its own (%s)\nreplay: %s\n%s", o.i, how, replay, lab.logTails(40))
			}
		}
	}
	start := time.Now()
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	for time.Since(start) < *chaosDuration {
		i := rng.IntN(n)
		h := lab.hosts[i]
		switch a := rng.IntN(10); {
		case a < 5: // crash and restart
			h.kill()
			st.kills.Add(1)
			time.Sleep(between(100*time.Millisecond, 1500*time.Millisecond))
			h.start()
		case a < 8: // cut off, then heal
			lab.setLink(i, false)
			st.partitions.Add(1)
			time.Sleep(between(time.Second, 4*time.Second))
			lab.setLink(i, true)
		default: // cut off, crash while cut off, heal, restart
			lab.setLink(i, false)
			st.partitions.Add(1)
			time.Sleep(between(500*time.Millisecond, 2*time.Second))
			h.kill()
			st.kills.Add(1)
			time.Sleep(between(100*time.Millisecond, time.Second))
			lab.setLink(i, true)
			h.start()
		}
		alive()
		time.Sleep(between(200*time.Millisecond, time.Second))
	}
	close(stop)
	wg.Wait()
	faultsEnded := time.Now()

	// Converged: every node holds the same offsets and misses nothing.
	waitChaos(t, lab, 90*time.Second, "the swarm converging after the last fault", func() bool {
		_, ok := agreed(ctx, clients)
		return ok
	})
	converged := time.Since(faultsEnded)
	alive()

	views := make([]promises.View, n)
	for i, c := range clients {
		views[i] = queryView(t, ctx, c, fmt.Sprintf("node %d", i), "FROM 'chaos'")
	}
	r := promises.Check(ledger, views)
	t.Logf("%d nodes, %v of faults: %d SIGKILLs, %d partitions; events attempted %d, acknowledged %d, stored %d, lost %d; %d publishes failed during faults; converged %.1fs after the last fault",
		n, chaosDuration.Round(time.Second), st.kills.Load(), st.partitions.Load(), r.Attempted, r.Acked, r.Stored, r.Lost,
		st.publishFailures.Load(), converged.Seconds())
	if r.Acked == 0 {
		t.Error("no publish was acknowledged")
	}
	if !r.OK() {
		for _, v := range r.Violations {
			t.Error(v)
		}
		t.Errorf("promises broken; replay: %s\n%s", replay, lab.logTails(30))
	}
}

// chaosPublisher publishes batches of one to three events to c until stop
// closes, recording each attempt and acknowledgement in ledger. A failed
// publish is not retried (a retry could store the event twice, which the
// check would rightly call a duplicate).
func chaosPublisher(ctx context.Context, c *client.Client, ledger *promises.Ledger, st *chaosStats, name string, node int, stop <-chan struct{}) {
	tags := []string{"chaos", fmt.Sprintf("node:%d", node)}
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		default:
		}
		evs := make([]client.PublishEvent, 1+k%3)
		ids := make([]string, len(evs))
		for j := range evs {
			ids[j] = fmt.Sprintf("%s-%d-%d", name, k, j)
			ledger.Attempt(ids[j], tags)
			evs[j] = client.PublishEvent{Tags: tags, Payload: json.RawMessage(fmt.Sprintf(`{"id":%q}`, ids[j]))}
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		metas, err := c.Publish(pctx, evs)
		cancel()
		if err != nil {
			st.publishFailures.Add(1)
			time.Sleep(20 * time.Millisecond) // the node is down or restarting
			continue
		}
		for j, m := range metas {
			ledger.Ack(ids[j], m)
		}
	}
}

// queryView reads the answer of a node to query for the promise checker,
// taking each event's ID from its payload's "id".
func queryView(t *testing.T, ctx context.Context, c *client.Client, name, query string) promises.View {
	t.Helper()
	v := promises.View{Node: name}
	for line, err := range c.Query(ctx, client.QueryRequest{Query: query}) {
		if err != nil {
			t.Fatalf("%s: query: %v", name, err)
		}
		if line.Type != "event" {
			continue
		}
		e := line.Event
		var p struct{ ID string }
		_ = json.Unmarshal(e.Payload, &p)
		v.Events = append(v.Events, promises.Stored{ID: p.ID, Stream: e.Stream, Offset: e.Offset, Lamport: e.Lamport, Tags: e.Tags})
	}
	return v
}

// waitChaos polls cond until it holds, failing the test after limit.
func waitChaos(t *testing.T, lab *netnsLab, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v\n%s", what, limit, lab.logTails(30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// agreed reports whether every client's node holds the same offsets and
// knows of nothing more to replicate, and returns those offsets.
func agreed(ctx context.Context, clients []*client.Client) (event.OffsetMap, bool) {
	var first event.OffsetMap
	for i, c := range clients {
		o, err := c.Offsets(ctx)
		if err != nil {
			return nil, false
		}
		for _, missing := range o.ToReplicate {
			if missing > 0 {
				return nil, false
			}
		}
		if i == 0 {
			first = o.Present
		} else if !maps.Equal(first, o.Present) {
			return nil, false
		}
	}
	return first, true
}
