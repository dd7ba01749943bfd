package store

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/internal/eventtest"
	"github.com/edgelog/edgelog/internal/testnet"
	"github.com/edgelog/edgelog/lamport"
)

// The helpers shared with the node's tests (package eventtest).
var (
	payload      = eventtest.Payload
	publish      = eventtest.Publish
	publishN     = eventtest.PublishN
	collect      = eventtest.Collect
	collectItems = eventtest.CollectItems
	query        = eventtest.Query
	keys         = eventtest.Keys
	stats        = eventtest.Stats
	held         = eventtest.Held
)

// waitFor polls cond until it holds or 60 s pass.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	testnet.WaitFor(t, time.Minute, what, cond)
}

func openTest(t testing.TB, dir string, mod ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{DataDir: dir, Durability: DurabilityAsync, Storage: Storage{MemTableSize: 4 << 20, BlockCacheSize: 8 << 20, MinFreeBytes: 1}, Logger: slog.New(slog.DiscardHandler)}
	for _, m := range mod {
		m(&cfg)
	}
	n, err := openKeyed(cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// openKeyed opens a store with cfg, its Key (if unset) derived from
// cfg.DataDir, so that a store reopened on the same directory is the same
// node, as it is when a node loads its key file.
func openKeyed(cfg Config) (*Store, error) {
	if cfg.Key == nil {
		seed := sha256.Sum256([]byte(cfg.DataDir))
		if cfg.DataDir == "" {
			crand.Read(seed[:])
		}
		cfg.Key = ed25519.NewKeyFromSeed(seed[:])
	}
	return Open(context.Background(), cfg)
}

func TestPublishQueryOrders(t *testing.T) {
	n := openTest(t, t.TempDir())
	var metas []event.Meta
	for i := range 10 {
		metas = append(metas, publish(t, n, "all", fmt.Sprintf("n:%d", i%3)))
	}
	for i, m := range metas {
		if m.Offset != uint64(i) || m.Stream != n.DefaultStream() || m.Lamport != uint64(i+1) {
			t.Fatalf("meta %d = %+v", i, m)
		}
	}
	asc := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'all'")})
	if len(asc) != 10 {
		t.Fatalf("got %d events, want 10", len(asc))
	}
	for i, e := range asc {
		if e.Offset != uint64(i) || e.AppID != "com.example.test" || !e.HasTag("all") {
			t.Fatalf("event %d = %+v", i, e)
		}
		var tags []string
		if err := event.UnmarshalCBOR(e.Payload, &tags); err != nil || !slices.Contains(tags, "all") {
			t.Fatalf("payload %d = %x (%v)", i, e.Payload, err)
		}
	}
	desc := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'all'"), Order: event.Desc})
	if k := keys(desc); !slices.IsSortedFunc(k, func(a, b lamport.EventKey) int { return lamport.Compare(b, a) }) || len(k) != 10 {
		t.Fatalf("desc order wrong: %v", k)
	}
	sa := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'n:1'"), Order: event.StreamAsc})
	if len(sa) != 3 || sa[0].Offset != 1 || sa[1].Offset != 4 || sa[2].Offset != 7 {
		t.Fatalf("stream-asc n:1 = %v", keys(sa))
	}
}

func TestBounds(t *testing.T) {
	n := openTest(t, t.TempDir())
	for range 10 {
		publish(t, n, "x")
	}
	s := n.DefaultStream()
	q := aql.MustParse("FROM allEvents")
	got := query(t, n, event.QueryRequest{Query: q, Lower: event.OffsetMap{s: 3}, Upper: event.OffsetMap{s: 6}})
	if k := keys(got); len(k) != 3 || k[0].Offset != 4 || k[2].Offset != 6 {
		t.Fatalf("(3,6] = %v", k)
	}
	// A stream missing from a given upper bound is not read.
	if got := query(t, n, event.QueryRequest{Query: q, Upper: event.OffsetMap{}}); len(got) != 0 {
		t.Fatalf("empty upper bound read %d events", len(got))
	}
	// Lower naming an unknown (well-formed) stream is fine.
	other := event.NewStreamID("12D3KooWOther", 0)
	if got := query(t, n, event.QueryRequest{Query: q, Lower: event.OffsetMap{other: 5}}); len(got) != 10 {
		t.Fatalf("unknown stream in lower: %d events", len(got))
	}
	// A lower bound at or past the end reads nothing, in any order.
	for _, lo := range []uint64{9, 1 << 63, math.MaxUint64} {
		for _, o := range []event.Order{event.Asc, event.Desc, event.StreamAsc} {
			if got := query(t, n, event.QueryRequest{Query: q, Lower: event.OffsetMap{s: lo}, Order: o}); len(got) != 0 {
				t.Fatalf("lower bound %d, order %v: %d events", lo, o, len(got))
			}
		}
	}
	_, offs, err := collect(t, n.Query(context.Background(), event.QueryRequest{Query: q}))
	if err != nil || offs[s] != 9 {
		t.Fatalf("final offsets %v, %v", offs, err)
	}
	for _, bad := range []event.QueryRequest{
		{Query: q, Upper: event.OffsetMap{s: 10}},
		// 2^63 and more are beyond every stream, not negative offsets.
		{Query: q, Upper: event.OffsetMap{s: 1 << 63}},
		{Query: q, Upper: event.OffsetMap{s: math.MaxUint64}},
		{Query: q, Upper: event.OffsetMap{s: math.MaxUint64}, Order: event.Desc},
		{Query: q, Upper: event.OffsetMap{s: math.MaxUint64}, Order: event.StreamAsc},
		{Query: q, Upper: event.OffsetMap{other: 0}},
		{Query: q, Upper: event.OffsetMap{"not a stream": 0}},
		{Query: q, Lower: event.OffsetMap{"-1": 0}},
	} {
		_, _, err := collect(t, n.Query(context.Background(), bad))
		if !errors.Is(err, event.ErrInvalid) {
			t.Errorf("bounds %v/%v: err = %v, want ErrInvalid", bad.Lower, bad.Upper, err)
		}
	}
}

func TestPublishValidation(t *testing.T) {
	n := openTest(t, t.TempDir(), func(c *Config) {
		c.Limits = Limits{MaxPayloadBytes: 100, MaxTagsPerEvent: 2, MaxTagBytes: 8, MaxEventsPerPublish: 3}
	})
	ok := payload(t, "ok")
	tests := []struct {
		name   string
		app    string
		drafts []event.Draft
		want   error
	}{
		{"no events", "a", nil, event.ErrInvalid},
		{"no app", "", []event.Draft{{Payload: ok}}, event.ErrInvalid},
		{"too many events", "a", make([]event.Draft, 4), event.ErrTooLarge},
		{"empty tag", "a", []event.Draft{{Tags: []string{""}, Payload: ok}}, event.ErrInvalid},
		{"NUL tag", "a", []event.Draft{{Tags: []string{"a\x00b"}, Payload: ok}}, event.ErrInvalid},
		{"long tag", "a", []event.Draft{{Tags: []string{"123456789"}, Payload: ok}}, event.ErrTooLarge},
		{"many tags", "a", []event.Draft{{Tags: []string{"a", "b", "c"}, Payload: ok}}, event.ErrTooLarge},
		{"no payload", "a", []event.Draft{{}}, event.ErrInvalid},
		{"big payload", "a", []event.Draft{{Payload: payload(t, string(make([]byte, 200)))}}, event.ErrTooLarge},
		{"bad cbor", "a", []event.Draft{{Payload: []byte{0xff, 0x00}}}, event.ErrInvalid},
		{"second bad", "a", []event.Draft{{Payload: ok}, {Payload: []byte{0x1f}}}, event.ErrInvalid},
	}
	for _, tt := range tests {
		_, err := n.Publish(context.Background(), tt.app, tt.drafts)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	// One nesting limit, event.MaxPayloadDepth, for JSON and CBOR: a JSON
	// payload the API accepts is stored (deeper than CBOR's default of 32).
	tooDeep := append([]byte(strings.Repeat("\x81", event.MaxPayloadDepth+1)), 0x01)
	if _, err := n.Publish(context.Background(), "a", []event.Draft{{Payload: tooDeep}}); !errors.Is(err, event.ErrInvalid) {
		t.Errorf("payload nested %d deep: err = %v, want ErrInvalid", event.MaxPayloadDepth+1, err)
	}
	deep, err := event.PayloadFromJSON([]byte(strings.Repeat("[", event.MaxPayloadDepth) + strings.Repeat("]", event.MaxPayloadDepth)))
	if err != nil {
		t.Fatal(err)
	}
	// Nothing of the failed publishes was stored; good ones still work.
	if m, err := n.Publish(context.Background(), "a", []event.Draft{{Payload: deep}}); err != nil || m[0].Offset != 0 {
		t.Fatalf("payload nested %d deep: %v %v", event.MaxPayloadDepth, m, err)
	}
	if m, err := n.Publish(context.Background(), "a", []event.Draft{{Tags: []string{"b", "a", "b"}, Payload: ok}}); err != nil || m[0].Offset != 1 {
		t.Fatalf("good publish after bad ones: %v %v", m, err)
	}
	evs := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM allEvents")})
	if len(evs) != 2 || !slices.Equal(evs[1].Tags, []string{"a", "b"}) {
		t.Fatalf("stored %v", evs)
	}
}

func TestGroupCommitConcurrentPublishers(t *testing.T) {
	n := openTest(t, t.TempDir(), func(c *Config) { c.Durability = DurabilitySync })
	const pubs, each = 32, 20
	var mu sync.Mutex
	var all []event.Meta
	var wg sync.WaitGroup
	for p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m, err := n.Publish(context.Background(), "com.example.t", []event.Draft{{Tags: []string{fmt.Sprintf("p:%d", p)}, Payload: payload(t, i)}})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				all = append(all, m...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(all, func(a, b event.Meta) int { return int(a.Offset) - int(b.Offset) })
	for i, m := range all {
		if m.Offset != uint64(i) {
			t.Fatalf("offsets not gapless/unique at %d: %+v", i, m)
		}
		if i > 0 && m.Lamport <= all[i-1].Lamport {
			t.Fatalf("lamport not increasing with offset at %d", i)
		}
	}
	if len(all) != pubs*each {
		t.Fatalf("%d acks, want %d", len(all), pubs*each)
	}
}

func TestRestartKeepsEventsOffsetsClock(t *testing.T) {
	dir := t.TempDir()
	n := openTest(t, dir, func(c *Config) { c.Durability = DurabilitySync })
	id := n.NodeID()
	for i := range 50 {
		publish(t, n, "r", fmt.Sprint(i))
	}
	clock := n.Lamport()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = openTest(t, dir)
	if n.NodeID() != id {
		t.Fatalf("node id changed across restart: %s -> %s", id, n.NodeID())
	}
	if n.Lamport() < clock {
		t.Fatalf("clock went back: %d -> %d", clock, n.Lamport())
	}
	offs, _ := n.Offsets(context.Background())
	if offs.Present[n.DefaultStream()] != 49 {
		t.Fatalf("offsets after restart: %v", offs.Present)
	}
	m := publish(t, n, "r")
	if m.Offset != 50 || m.Lamport <= clock {
		t.Fatalf("publish after restart: %+v (clock was %d)", m, clock)
	}
	if got := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'r'")}); len(got) != 51 {
		t.Fatalf("%d events after restart, want 51", len(got))
	}
}

// putForeign stores events of another node's stream directly, as
// replication will: with their own lamports and offsets.
func putForeign(t testing.TB, n *Store, stream event.StreamID, evs []event.Event) {
	t.Helper()
	st := n.st
	st.mu.Lock()
	sid, ok := st.sids[stream]
	if !ok {
		sid = st.addStream(stream)
	}
	st.mu.Unlock()
	err := st.db.Update(func(txn *badger.Txn) error {
		if !ok {
			if err := txn.Set(nameKey(sid), []byte(stream)); err != nil {
				return err
			}
		}
		var lamports []uint64
		for _, e := range evs {
			lamports = append(lamports, e.Lamport)
		}
		if err := txn.Set(streamKey(sid, evs[0].Offset), appendRun(nil, lamports)); err != nil {
			return err
		}
		var blocks blockBuilder
		var err error
		put := func(sid uint32, first uint64, val []byte) { err = errors.Join(err, txn.Set(blockKey(sid, first), val)) }
		for _, e := range evs {
			p := pos{e.Lamport, sid, e.Offset}
			block, _ := blocks.add(p, &record{e.Timestamp, e.Tags, e.AppID, e.Payload}, put)
			for _, tag := range e.Tags {
				if err := txn.Set(tagKey(tag, p), startPosted(nil, ref{p, block})); err != nil {
					return err
				}
			}
		}
		blocks.flush(put)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.present[sid] = int64(evs[len(evs)-1].Offset)
	st.total += uint64(len(evs))
	close(st.changed)
	st.changed = make(chan struct{})
	st.mu.Unlock()
	for _, e := range evs {
		n.clock.Observe(e.Lamport)
	}
}

func TestMergedOrderAcrossStreamsWithEqualLamports(t *testing.T) {
	n := openTest(t, t.TempDir())
	// Interned in the order z, a, m: the store's raw order for equal
	// lamports differs from stream-name order, which must win.
	for _, name := range []string{"zz", "aa", "mm"} {
		s := event.NewStreamID("12D3KooW"+name, 0)
		var evs []event.Event
		for off := range 5 {
			evs = append(evs, event.Event{Lamport: uint64(off * 2), Offset: uint64(off), Tags: []string{"t"}, AppID: "x", Payload: payload(t, off)})
		}
		putForeign(t, n, s, evs)
	}
	for _, order := range []event.Order{event.Asc, event.Desc} {
		got := keys(query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 't'"), Order: order}))
		want := slices.Clone(got)
		slices.SortFunc(want, lamport.Compare)
		if order == event.Desc {
			slices.Reverse(want)
		}
		if len(got) != 15 || !slices.Equal(got, want) {
			t.Fatalf("order %v: got %v", order, got)
		}
	}
	got := keys(query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 't'"), Order: event.StreamAsc}))
	if got[0].Stream != "12D3KooWaa-0" || got[5].Stream != "12D3KooWmm-0" || got[14].Offset != 4 {
		t.Fatalf("stream-asc: %v", got)
	}
}

// TestIndexAndScanAgree checks both query paths against a naive filter.
func TestIndexAndScanAgree(t *testing.T) {
	n := openTest(t, t.TempDir())
	r := rand.New(rand.NewPCG(7, 7))
	tagPool := []string{"a", "b", "c", "d", "rare"}
	var all []*event.Event
	for i := range 400 {
		var tags []string
		for _, tg := range tagPool[:4] {
			if r.IntN(3) == 0 {
				tags = append(tags, tg)
			}
		}
		if i%50 == 0 {
			tags = append(tags, "rare")
		}
		app := "com.example.a"
		if i%2 == 0 {
			app = "com.example.b"
		}
		ms, err := n.Publish(context.Background(), app, []event.Draft{{Tags: tags, Payload: payload(t, i)}})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, &event.Event{Lamport: ms[0].Lamport, Stream: ms[0].Stream, Offset: ms[0].Offset, Tags: tags, AppID: app})
	}
	queries := []string{
		"FROM 'a'", "FROM 'rare'", "FROM 'a' & 'b'", "FROM 'a' | 'rare'", "FROM ('a' | 'b') & 'c'",
		"FROM 'rare' & appId(com.example.b)", "FROM 'rare' | appId(com.example.a)", "FROM allEvents",
		"FROM isLocal & 'd'", "FROM 'nope'", "FROM 'rare' & 'a' | 'rare' & 'b'",
	}
	s := n.DefaultStream()
	for _, src := range queries {
		q := aql.MustParse(src)
		for _, lo := range []int64{-1, 100} {
			lower := event.OffsetMap{}
			if lo >= 0 {
				lower[s] = uint64(lo)
			}
			var want []lamport.EventKey
			for _, e := range all {
				if int64(e.Offset) > lo && q.Match(&aql.Subject{Tags: e.Tags, AppID: e.AppID, Local: true}) {
					want = append(want, e.Key())
				}
			}
			txn := n.st.db.NewTransaction(false)
			pl, err := n.resolve(txn, n.st.snapshot(), lower, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, desc := range []bool{false, true} {
				w := slices.Clone(want)
				if desc {
					slices.Reverse(w)
				}
				got, err := drain(n.scan(context.Background(), txn, pl, q, desc))
				if err != nil || !slices.Equal(got, w) {
					t.Fatalf("scan %q lo=%d desc=%v: got %d events %v, want %d", src, lo, desc, len(got), err, len(w))
				}
				if tags, ok := candidateTags(q.Where, func(string) uint64 { return 1 }); ok {
					got, err := drain(n.readIndex(context.Background(), txn, pl, q, tags, desc))
					if err != nil || !slices.Equal(got, w) {
						t.Fatalf("index %q lo=%d desc=%v: got %d events %v, want %d", src, lo, desc, len(got), err, len(w))
					}
				}
				got2 := keys(query(t, n, event.QueryRequest{Query: q, Lower: lower, Order: map[bool]event.Order{false: event.Asc, true: event.Desc}[desc]}))
				if !slices.Equal(got2, w) {
					t.Fatalf("query %q lo=%d desc=%v: got %d events, want %d", src, lo, desc, len(got2), len(w))
				}
			}
			txn.Discard()
		}
	}
	// A rare tag is answered from the index, a common one by scanning.
	txn := n.st.db.NewTransaction(false)
	defer txn.Discard()
	pl, _ := n.resolve(txn, n.st.snapshot(), nil, nil)
	if _, ok := n.indexPlan(txn, pl, aql.Tag{Name: "rare"}); !ok {
		t.Error("rare tag not planned on the index")
	}
	if _, ok := n.indexPlan(txn, pl, aql.Tag{Name: "a"}); ok {
		t.Error("common tag planned on the index")
	}
	// What is rare counts against the events in the offset range, not in
	// the store: in the last 40 events "rare" is rarer than one in eight;
	// the last 4 (a subscription's round) are scanned.
	top := n.st.snapshot().offsets()[s]
	for _, c := range []struct {
		back  uint64
		index bool
	}{{40, true}, {4, false}} {
		pl, err := n.resolve(txn, n.st.snapshot(), event.OffsetMap{s: top - c.back}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := pl.events(); got != c.back {
			t.Errorf("plan of the last %d offsets holds %d events", c.back, got)
		}
		if _, ok := n.indexPlan(txn, pl, aql.Tag{Name: "rare"}); ok != c.index {
			t.Errorf("last %d events: rare tag planned on the index: %v, want %v", c.back, ok, c.index)
		}
	}
	// A tag common in the range is scanned there, though an index read
	// of it would be cheap measured against the whole store.
	if pl, _ := n.resolve(txn, n.st.snapshot(), event.OffsetMap{s: top - 40}, nil); pl != nil {
		if _, ok := n.indexPlan(txn, pl, aql.Tag{Name: "a"}); ok {
			t.Error("common tag in the last 40 events planned on the index")
		}
	}
}

func TestStorageFullRefusesAndKeepsServing(t *testing.T) {
	n := openTest(t, t.TempDir())
	publish(t, n, "d")
	n.w.minFree.Store(1 << 62) // more than any disk has
	if _, err := n.Publish(context.Background(), "a", []event.Draft{{Payload: payload(t, 1)}}); !errors.Is(err, event.ErrStorageFull) {
		t.Fatalf("publish on a full disk: %v, want ErrStorageFull", err)
	}
	if got := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM allEvents")}); len(got) != 1 {
		t.Fatalf("query on a full disk: %d events", len(got))
	}
	n.w.minFree.Store(1)
	if m := publish(t, n, "d"); m.Offset != 1 {
		t.Fatalf("publish after space returned: %+v (a refused publish must leave no gap)", m)
	}
}

// TestCloseAnswersEveryPublish closes the node under concurrent publishers:
// every Publish returns (stored or ErrUnavailable), none hangs, and every
// acknowledged event is there after a restart.
func TestCloseAnswersEveryPublish(t *testing.T) {
	dir := t.TempDir()
	n := openTest(t, dir)
	var mu sync.Mutex
	acked := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, err := n.Publish(context.Background(), "com.example.t", []event.Draft{{Tags: []string{"c"}, Payload: payload(t, 1)}})
				if errors.Is(err, event.ErrUnavailable) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked++
				mu.Unlock()
			}
		}()
	}
	for {
		mu.Lock()
		a := acked
		mu.Unlock()
		if a >= 200 {
			break
		}
		runtime.Gosched()
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	n = openTest(t, dir)
	if got := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'c'")}); len(got) < acked {
		t.Fatalf("%d events after restart, %d acknowledged", len(got), acked)
	}
}
