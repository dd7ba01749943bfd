package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// withStreams configures routes and streams.
func withStreams(routes []expiry.Route, streams map[string]expiry.Retention) func(*Config) {
	return func(c *Config) {
		c.Routes, c.Streams = routes, streams
	}
}

// publishN publishes n events with the given tags in batches of batch.
func publishN(t testing.TB, n *Node, count, batch int, tags ...string) []event.Meta {
	t.Helper()
	var out []event.Meta
	p := payload(t, map[string]int{"value": 42})
	for done := 0; done < count; {
		k := min(batch, count-done)
		drafts := make([]event.Draft, k)
		for i := range drafts {
			drafts[i] = event.Draft{Tags: tags, Payload: p}
		}
		m, err := n.Publish(context.Background(), "com.example.test", drafts)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		out = append(out, m...)
		done += k
	}
	return out
}

// waitFor polls cond until it holds or 60 s pass.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after 60s: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stats(t testing.TB, n *Node, s event.StreamID) event.StreamStats {
	t.Helper()
	o, err := n.Offsets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return o.Streams[s]
}

// held queries one stream and checks it holds exactly floor..present, gapless.
func held(t testing.TB, n *Node, s event.StreamID) (floor, count uint64) {
	t.Helper()
	items, _, err := collectItems(n.Query(context.Background(), event.QueryRequest{Query: aql.MustParse("FROM allEvents"), Order: event.StreamAsc}))
	if err != nil {
		t.Fatal(err)
	}
	var offs []uint64
	for _, it := range items {
		if it.Kind == event.KindEvent && it.Event.Stream == s {
			offs = append(offs, it.Event.Offset)
		}
	}
	for i := 1; i < len(offs); i++ {
		if offs[i] != offs[i-1]+1 {
			t.Fatalf("stream %s has a gap: %d then %d", s, offs[i-1], offs[i])
		}
	}
	if len(offs) == 0 {
		return 0, 0
	}
	return offs[0], uint64(len(offs))
}

func collectItems(seq func(func(event.Item, error) bool)) ([]event.Item, event.OffsetMap, error) {
	var items []event.Item
	var offs event.OffsetMap
	for it, err := range seq {
		if err != nil {
			return items, offs, err
		}
		if it.Kind == event.KindOffsets {
			offs = it.Offsets
		}
		items = append(items, it)
	}
	return items, offs, nil
}

func TestRoutingStreamsAndStableNumbers(t *testing.T) {
	dir := t.TempDir()
	routes := []expiry.Route{{From: "'telemetry'", Into: "telemetry"}, {From: "FROM 'debug' | 'trace'", Into: "debug"}}
	streams := map[string]expiry.Retention{"telemetry": {MaxEvents: 1000}, "debug": {}}
	n := openTest(t, dir, withStreams(routes, streams))
	ids := n.StreamIDs()
	if ids["default"] != n.DefaultStream() || ids["debug"] != event.NewStreamID(n.NodeID(), 1) || ids["telemetry"] != event.NewStreamID(n.NodeID(), 2) {
		t.Fatalf("stream ids %v", ids)
	}
	// One publish, three streams: offsets are gapless per stream, and the
	// events keep their order.
	drafts := []event.Draft{
		{Tags: []string{"telemetry"}, Payload: payload(t, 1)},
		{Tags: []string{"other"}, Payload: payload(t, 2)},
		{Tags: []string{"trace"}, Payload: payload(t, 3)},
		{Tags: []string{"telemetry", "x"}, Payload: payload(t, 4)},
		{Tags: []string{"debug", "telemetry"}, Payload: payload(t, 5)}, // first route wins
	}
	metas, err := n.Publish(context.Background(), "com.example.test", drafts)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		off  uint64
	}{{"telemetry", 0}, {"default", 0}, {"debug", 0}, {"telemetry", 1}, {"telemetry", 2}}
	for i, m := range metas {
		if m.Stream != ids[want[i].name] || m.Offset != want[i].off || (i > 0 && m.Lamport != metas[i-1].Lamport+1) {
			t.Errorf("event %d: %+v, want %s offset %d", i, m, want[i].name, want[i].off)
		}
	}
	// The replicated head of every stream verifies.
	heads, _ := (*replStore)(n).Heads(context.Background())
	if len(heads) != 3 {
		t.Fatalf("%d heads, want 3", len(heads))
	}
	n.Close()

	// A new stream, sorting first, and a changed rule: existing streams
	// keep their numbers, existing events stay where they are.
	streams = map[string]expiry.Retention{"alpha": {}, "telemetry": {MaxEvents: 2000}, "debug": {MaxAge: time.Hour}}
	routes = []expiry.Route{{From: "'telemetry'", Into: "alpha"}}
	n = openTest(t, dir, withStreams(routes, streams))
	ids2 := n.StreamIDs()
	if ids2["telemetry"] != ids["telemetry"] || ids2["debug"] != ids["debug"] || ids2["alpha"] != event.NewStreamID(n.NodeID(), 3) {
		t.Fatalf("stream ids after restart %v, before %v", ids2, ids)
	}
	m := publish(t, n, "telemetry")
	if m.Stream != ids2["alpha"] || m.Offset != 0 {
		t.Fatalf("rerouted event: %+v", m)
	}
	if s := stats(t, n, ids["telemetry"]); s.Count != 3 || s.Floor != 0 || s.Bytes <= 0 || s.Retention != "maxEvents=2000" {
		t.Fatalf("telemetry stats %+v", s)
	}
}

func TestRoutingBadSettings(t *testing.T) {
	for _, tc := range []struct {
		routes  []expiry.Route
		streams map[string]expiry.Retention
		want    string
	}{
		{[]expiry.Route{{From: "'a'", Into: "missing"}}, nil, "routes[0].into"},
		{[]expiry.Route{{From: "'a", Into: "t"}}, map[string]expiry.Retention{"t": {}}, "routes[0].from"},
		{nil, map[string]expiry.Retention{"t": {MaxAge: -time.Second}}, "streams.t.maxAge"},
	} {
		_, err := Open(context.Background(), Config{DataDir: t.TempDir(), Routes: tc.routes, Streams: tc.streams})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open = %v, want an error naming %s", err, tc.want)
		}
	}
}

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
	a := openTest(t, t.TempDir(), withStreams(routes, streams), func(c *Config) {
		c.Replication = &Replication{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Swarm: "test-" + t.Name()}
	})
	b := openReplicating(t, t.TempDir(), a.ListenAddrs()[0])
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
		return o.Present[s] == total-1 && st.Count <= keep+pruneBatchEvents, fmt.Sprintf("present %d, %+v", o.Present[s], st)
	})
	close(stop)
	wg.Wait()
	t.Logf("replica held at most %d events while following", maxSeen)
	for name, n := range map[string]*Node{"origin": a, "replica": b} {
		floor, count := held(t, n, s)
		st := stats(t, n, s)
		if count != st.Count || floor != st.Floor || floor+count != total || count > keep+pruneBatchEvents {
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
	a := openTest(t, t.TempDir(), withStreams(routes, streams), func(c *Config) {
		c.Replication = &Replication{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Swarm: "test-" + t.Name()}
	})
	s := a.StreamIDs()["t"]
	// Batches of 7 do not end where the floor falls: the head at floor-1
	// is one the origin never signed.
	publishN(t, a, 1000, 7, "t")
	waitFor(t, "origin pruned", func() (bool, string) {
		st := stats(t, a, s)
		return st.Count == 100, fmt.Sprintf("%+v", st)
	})
	b := openReplicating(t, t.TempDir(), a.ListenAddrs()[0])
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

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMaxAgeWithInjectedClock(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	streams := map[string]expiry.Retention{"default": {MaxAge: time.Hour}}
	n := openTest(t, t.TempDir(), withStreams(nil, streams), func(c *Config) {
		c.Now = clock.Now
		c.PruneInterval = 10 * time.Millisecond
	})
	s := n.DefaultStream()
	publishN(t, n, 30, 10, "a") // t0
	clock.Add(40 * time.Minute)
	publishN(t, n, 20, 10, "a") // t0+40m
	time.Sleep(50 * time.Millisecond)
	if st := stats(t, n, s); st.Count != 50 {
		t.Fatalf("nothing is an hour old yet, but %+v", st)
	}
	clock.Add(30 * time.Minute) // the first 30 are 70 minutes old
	waitFor(t, "first events expired", func() (bool, string) {
		st := stats(t, n, s)
		return st.Floor == 30 && st.Count == 20, fmt.Sprintf("%+v", st)
	})
	clock.Add(time.Hour)
	waitFor(t, "every event expired", func() (bool, string) {
		st := stats(t, n, s)
		return st.Floor == 50 && st.Count == 0 && st.Bytes == 0, fmt.Sprintf("%+v", st)
	})
	// The offsets stay; new events continue them, and their chain too.
	m := publish(t, n, "a")
	if m.Offset != 50 {
		t.Fatalf("new event at offset %d, want 50", m.Offset)
	}
	if _, count := held(t, n, s); count != 1 {
		t.Fatalf("holds %d events, want 1", count)
	}
}

// dirSize is the disk space used under dir.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += diskUsage(fi)
		}
		return nil
	})
	return n
}

func TestMaxSizeOnDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MB")
	}
	const limit = 8 << 20
	dir := t.TempDir()
	streams := map[string]expiry.Retention{"bulk": {MaxBytes: limit}}
	routes := []expiry.Route{{From: "allEvents", Into: "bulk"}}
	n := openTest(t, dir, withStreams(routes, streams), func(c *Config) {
		c.Storage.MemTableSize = 2 << 20
		c.PruneInterval = 100 * time.Millisecond
		if os.Getenv("EDGELOG_TEST_LOG") != "" {
			c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	})
	s := n.StreamIDs()["bulk"]
	// 64 MB of incompressible 4 KiB payloads.
	blob := make([]byte, 4096)
	for i := range 16384 / 32 {
		drafts := make([]event.Draft, 32)
		for j := range drafts {
			rand.Read(blob)
			drafts[j] = event.Draft{Tags: []string{"bulk"}, Payload: payload(t, blob)}
		}
		if _, err := n.Publish(context.Background(), "com.example.test", drafts); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	waitFor(t, "pruned to maxSize", func() (bool, string) {
		st := stats(t, n, s)
		return st.Bytes <= limit, fmt.Sprintf("%+v", st)
	})
	st := stats(t, n, s)
	if st.Bytes < limit-pruneBatchEvents*5000 {
		t.Errorf("kept %d bytes, expected close to %d", st.Bytes, limit)
	}
	// Space comes back by itself: the pruner compacts when the tables hold
	// much more than the events kept. Deletes reach the tables when the
	// memtable holding them is flushed, so writes go on, slowly, as on a
	// device.
	waitFor(t, "tables shrunk", func() (bool, string) {
		sst := sstSize(t, filepath.Join(dir, "db"))
		if sst > limit*3/2 {
			rand.Read(blob)
			if _, err := n.Publish(context.Background(), "com.example.test", []event.Draft{{Tags: []string{"bulk"}, Payload: payload(t, blob)}}); err != nil {
				t.Fatal(err)
			}
		}
		return sst <= limit*3/2, fmt.Sprintf("tables take %d bytes", sst)
	})
	size := dirSize(t, filepath.Join(dir, "db"))
	t.Logf("stream holds %d events, %d bytes; tables %d bytes, database directory %d bytes (limit %d)",
		st.Count, st.Bytes, sstSize(t, filepath.Join(dir, "db")), size, limit)
}

// sstSize is the disk space of Badger's tables in dir.
func sstSize(t testing.TB, dir string) int64 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += diskUsage(fi)
		}
	}
	return n
}

func TestRestartWithChangedRule(t *testing.T) {
	dir := t.TempDir()
	routes := []expiry.Route{{From: "'t'", Into: "t"}}
	open := func(keep uint64) *Node {
		return openTest(t, dir, withStreams(routes, map[string]expiry.Retention{"t": {MaxEvents: keep}}))
	}
	n := open(1000)
	s := n.StreamIDs()["t"]
	publishN(t, n, 3000, 250, "t")
	waitFor(t, "pruned to 1000", func() (bool, string) {
		st := stats(t, n, s)
		return st.Count == 1000, fmt.Sprintf("%+v", st)
	})
	n.Close()
	n = open(500)
	waitFor(t, "pruned to 500", func() (bool, string) {
		st := stats(t, n, s)
		return st.Count == 500 && st.Floor == 2500, fmt.Sprintf("%+v", st)
	})
	n.Close()
	// A looser rule keeps what is there; nothing comes back, nothing moves.
	n = open(2000)
	time.Sleep(100 * time.Millisecond)
	if floor, count := held(t, n, s); floor != 2500 || count != 500 {
		t.Fatalf("holds %d from %d after loosening the rule", count, floor)
	}
	if m := publish(t, n, "t"); m.Offset != 3000 {
		t.Fatalf("next offset %d", m.Offset)
	}
	// The stream's chain still continues: its new head verifies.
	heads, _ := (*replStore)(n).Heads(context.Background())
	if h := heads[s]; h.Offset != 3000 || len(h.Sig) == 0 {
		t.Fatalf("head %+v", h)
	}
}

func TestSubscribeBelowFloorGetsDiagnostic(t *testing.T) {
	routes := []expiry.Route{{From: "'t'", Into: "t"}}
	n := openTest(t, t.TempDir(), withStreams(routes, map[string]expiry.Retention{"t": {MaxEvents: 10}}))
	s := n.StreamIDs()["t"]
	publishN(t, n, 100, 10, "t")
	waitFor(t, "pruned", func() (bool, string) {
		st := stats(t, n, s)
		return st.Count == 10, fmt.Sprintf("%+v", st)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []event.Item
	for it, err := range n.Subscribe(ctx, event.SubscribeRequest{Query: aql.MustParse("FROM 't'"), Lower: event.OffsetMap{s: 5}}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, it)
		if it.Kind == event.KindOffsets {
			break
		}
	}
	if len(got) != 12 || got[0].Kind != event.KindDiagnostic || !strings.Contains(got[0].Message, "below offset 90") || got[1].Event.Offset != 90 {
		t.Fatalf("subscription began with %d items: %+v", len(got), got[:min(2, len(got))])
	}
	// A pull from below the floor is answered from it.
	var offs []uint64
	var floorSeen bool
	for en, err := range (*replStore)(n).ReadRange(context.Background(), s, -1, 99) {
		if err != nil {
			t.Fatal(err)
		}
		if en.Floor != nil {
			floorSeen = en.Floor.Offset == 89
			continue
		}
		offs = append(offs, en.Event.Offset)
	}
	if !floorSeen || len(offs) != 10 || offs[0] != 90 || !slices.IsSorted(offs) {
		t.Fatalf("ReadRange: floor %v, offsets %v", floorSeen, offs)
	}
}
