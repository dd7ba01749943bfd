package node

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
	"github.com/edgelog/edgelog/store"
)

// TestMaxEventsOriginAndReplica: 100k events into a maxEvents 1000 stream
// leave at most 1000 plus one pruning batch on the origin and on a replica
// that pulls from it over loopback libp2p; queries read from the floor and
// say that events expired.
func TestMaxEventsOriginAndReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("100k events")
	}
	const total, keep = 100_000, 1000
	routes := []expiry.Route{{From: "'telemetry'", Into: "telemetry"}}
	streams := map[string]expiry.Retention{"telemetry": {MaxEvents: keep}}
	a := openTest(t, t.TempDir(), withStreams(routes, streams), replicating(nil, "test-"+t.Name()))
	b := openReplicating(t, nil, t.TempDir(), a.ListenAddrs()[0])
	s := a.StreamIDs()["telemetry"]

	// Sample the replica while it follows, to see it never holds much more.
	var maxSeen uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 100_000; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if o, err := b.Offsets(context.Background()); err == nil {
				maxSeen = max(maxSeen, o.Streams[s].Count)
			}
		}
	})
	publishN(t, a, total, 1000, "telemetry", "machine:7")
	publish(t, a, "other")

	waitFor(t, "origin pruned", func() (bool, string) {
		st := stats(t, a, s)
		return st.Count <= keep, fmt.Sprintf("%+v", st)
	})
	waitFor(t, "replica caught up and pruned", func() (bool, string) {
		o, _ := b.Offsets(context.Background())
		st := o.Streams[s]
		return o.Present[s] == total-1 && st.Count <= keep+store.PruneBatchEvents, fmt.Sprintf("present %d, %+v", o.Present[s], st)
	})
	close(stop)
	wg.Wait()
	t.Logf("replica held at most %d events while following", maxSeen)
	for name, n := range map[string]*Node{"origin": a, "replica": b} {
		floor, count := held(t, n, s)
		st := stats(t, n, s)
		if count != st.Count || floor != st.Floor || floor+count != total || count > keep+store.PruneBatchEvents {
			t.Errorf("%s holds %d events from %d, stats %+v", name, count, floor, st)
		}
		// A query from the start reads from the floor and says so.
		items, _, err := collectItems(n.Query(context.Background(), event.QueryRequest{Query: aql.MustParse("FROM 'machine:7'")}))
		if err != nil {
			t.Fatal(err)
		}
		if items[0].Kind != event.KindDiagnostic || !strings.Contains(items[0].Message, fmt.Sprintf("%s below offset %d", s, floor)) {
			t.Errorf("%s: first item %+v, want an expiry diagnostic", name, items[0])
		}
		if items[1].Kind != event.KindEvent || items[1].Event.Offset != floor {
			t.Errorf("%s: first event %+v, want offset %d", name, items[1].Event, floor)
		}
		// A lower bound at or above the floor gives no diagnostic.
		items, _, _ = collectItems(n.Query(context.Background(), event.QueryRequest{Query: aql.MustParse("FROM allEvents"), Lower: event.OffsetMap{s: total - 10}, Upper: event.OffsetMap{s: total - 1}}))
		if len(items) != 10 || items[0].Kind != event.KindEvent {
			t.Errorf("%s: bounded query gave %d items, first %+v", name, len(items), items[0])
		}
	}
	// The replica learnt the rule from the origin's gossip.
	if r := stats(t, b, s).Retention; r != "maxEvents=1000" {
		t.Errorf("replica's retention %q", r)
	}
}

// TestReplicaJoinsAfterExpiry: a replica that starts after the origin
// pruned pulls from below the floor and is answered from the floor; the
// chain verifies from the head there, and later events follow.
func TestReplicaJoinsAfterExpiry(t *testing.T) {
	routes := []expiry.Route{{From: "'t'", Into: "t"}}
	streams := map[string]expiry.Retention{"t": {MaxEvents: 100}}
	a := openTest(t, t.TempDir(), withStreams(routes, streams), replicating(nil, "test-"+t.Name()))
	s := a.StreamIDs()["t"]
	// Batches of 7 do not end where the floor falls: the head at floor-1
	// is one the origin never signed.
	publishN(t, a, 1000, 7, "t")
	waitFor(t, "origin pruned", func() (bool, string) {
		st := stats(t, a, s)
		return st.Count == 100, fmt.Sprintf("%+v", st)
	})
	b := openReplicating(t, nil, t.TempDir(), a.ListenAddrs()[0])
	waitFor(t, "replica caught up", func() (bool, string) {
		st := stats(t, b, s)
		return st.Floor == 900 && st.Count == 100, fmt.Sprintf("%+v", st)
	})
	publishN(t, a, 50, 10, "t")
	waitFor(t, "replica follows", func() (bool, string) {
		st := stats(t, b, s)
		return st.Floor+st.Count == 1050 && st.Count == 100, fmt.Sprintf("%+v", st)
	})
	fa, ca := held(t, a, s)
	fb, cb := held(t, b, s)
	if fa != fb || ca != cb {
		t.Fatalf("origin holds %d from %d, replica %d from %d", ca, fa, cb, fb)
	}
}
