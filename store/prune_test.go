package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"math"
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
	heads, _ := n.Heads(context.Background())
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
		_, err := openKeyed(Config{DataDir: t.TempDir(), Routes: tc.routes, Streams: tc.streams})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open = %v, want an error naming %s", err, tc.want)
		}
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
	// A pass at t0+40m, run here rather than waited for, expires nothing.
	if more, _, err := n.prunePass(context.Background()); err != nil || more {
		t.Fatalf("prune pass: more %v, %v", more, err)
	}
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
	if st.Bytes < limit-PruneBatchEvents*5000 {
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
	open := func(keep uint64) *Store {
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
	if _, _, err := n.prunePass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if floor, count := held(t, n, s); floor != 2500 || count != 500 {
		t.Fatalf("holds %d from %d after loosening the rule", count, floor)
	}
	if m := publish(t, n, "t"); m.Offset != 3000 {
		t.Fatalf("next offset %d", m.Offset)
	}
	// The stream's chain still continues: its new head verifies.
	heads, _ := n.Heads(context.Background())
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
	// A lower bound past the end reads nothing, even where adding one
	// to it wraps around to below the floor.
	for _, lo := range []uint64{99, 1 << 63, math.MaxUint64} {
		items, _, err := collectItems(n.Query(context.Background(), event.QueryRequest{Query: aql.MustParse("FROM 't'"), Lower: event.OffsetMap{s: lo}}))
		if err != nil || len(items) != 1 || items[0].Kind != event.KindOffsets {
			t.Fatalf("lower bound %d: %d items (%+v), %v", lo, len(items), items, err)
		}
	}
	// A pull from below the floor is answered from it.
	var offs []uint64
	var floorSeen bool
	for en, err := range n.ReadRange(context.Background(), s, -1, 99) {
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
