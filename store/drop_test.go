package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// TestEventRangePrefixes: the prefixes cover exactly the offsets of the
// range, of the one stream, with no prefix covering more than one block.
func TestEventRangePrefixes(t *testing.T) {
	covered := func(prefixes [][]byte, sid uint32, off uint64) int {
		k := blockKey(sid, off)
		c := 0
		for _, p := range prefixes {
			if bytes.HasPrefix(k, p) {
				c++
			}
		}
		return c
	}
	cases := [][2]uint64{{0, 0}, {0, 256}, {256, 512}, {0, 1 << 16}, {0, 1<<16 + 256}, {255 * 256, 1<<17 + 512}, {1 << 40, 1<<40 + 1<<24}}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		a := rng.Uint64N(1<<26) &^ 255
		cases = append(cases, [2]uint64{a, a + rng.Uint64N(1<<22)&^255})
	}
	for _, c := range cases {
		from, to := c[0], c[1]
		ps := eventRangePrefixes(7, from, to)
		if len(ps) > 2*255*8 {
			t.Fatalf("[%d, %d): %d prefixes", from, to, len(ps))
		}
		probes := []uint64{from, to - 1, to, to + 1, (from + to) / 2}
		if from > 0 {
			probes = append(probes, from-1)
		}
		for range 50 {
			if to > from {
				probes = append(probes, from+rng.Uint64N(to-from))
			}
		}
		for _, off := range probes {
			want := 0
			if off >= from && off < to {
				want = 1
			}
			if got := covered(ps, 7, off); got != want {
				t.Fatalf("[%d, %d): offset %d covered %d times, want %d (prefixes %x)", from, to, off, got, want, ps)
			}
			if covered(ps, 8, off) != 0 || covered(ps, 6, off) != 0 {
				t.Fatalf("[%d, %d): a prefix covers another stream", from, to)
			}
		}
	}
	if n := len(eventRangePrefixes(1, 0, 1<<32)); n != 1 {
		t.Errorf("an aligned block of 2^32 offsets took %d prefixes, want 1", n)
	}
}

func TestDropDue(t *testing.T) {
	for _, c := range []struct {
		undropped, kept int64
		since           time.Duration
		want            bool
	}{
		{0, 0, time.Hour, false},
		{dropMinBytes, 0, time.Hour, true},
		{dropMinBytes, 0, time.Second, false},                      // too soon after the last
		{dropMinBytes, 64 * dropMinBytes, time.Hour, false},        // small next to what is kept
		{4 * dropMinBytes, 64 * dropMinBytes, time.Hour, true},     // a sixteenth of it
		{dropMinBytes - 1, 8 * dropMinBytes, time.Hour, false},     // below the minimum
		{100 * dropMinBytes, 64 * dropMinBytes, time.Minute, true}, // far behind
	} {
		if got := dropDue(c.undropped, c.kept, c.since); got != c.want {
			t.Errorf("dropDue(%d, %d, %v) = %v, want %v", c.undropped, c.kept, c.since, got, c.want)
		}
	}
}

// storedRecords counts the records of s the database holds, expired or not.
func storedRecords(t testing.TB, n *Store, s event.StreamID) (count, first uint64) {
	t.Helper()
	sid := n.st.snapshot().sids[s]
	err := n.st.db.View(func(txn *badger.Txn) error {
		return eachBlock(txn, eventPrefix(sid), func(_ []byte, _ uint32, off uint64, recs []blockRec) error {
			if count == 0 {
				first = off
			}
			count += uint64(len(recs))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return count, first
}

// TestDropExpiredRecords: pruning takes expired records off the disk (in
// aligned ranges, by DropPrefix), but not while a read that began before
// the prune could still load them.
func TestDropExpiredRecords(t *testing.T) {
	const keep = 1000
	routes := []expiry.Route{{From: "'telemetry'", Into: "telemetry"}}
	streams := map[string]expiry.Retention{"telemetry": {MaxEvents: keep}}
	n := openTest(t, t.TempDir(), withStreams(routes, streams), func(c *Config) { c.PruneInterval = 20 * time.Millisecond })
	s := n.StreamIDs()["telemetry"]
	publishN(t, n, 20_000, 500, "telemetry", "machine:1")
	waitFor(t, "expired records dropped", func() (bool, string) {
		st := stats(t, n, s)
		stored, first := storedRecords(t, n, s)
		return st.Count <= keep && stored <= st.Count+dropAlign-1 && first <= st.Floor,
			fmt.Sprintf("%+v; %d records stored from offset %d", st, stored, first)
	})
	floor, count := held(t, n, s)
	if st := stats(t, n, s); floor != st.Floor || count != st.Count {
		t.Fatalf("queries see %d events from %d, stats say %+v", count, floor, st)
	}

	// A read begun now holds the records it may load.
	txn, end := n.st.beginRead()
	oldFloor := floor
	publishN(t, n, 5000, 500, "telemetry", "machine:1")
	waitFor(t, "pruned past the held read", func() (bool, string) {
		st := stats(t, n, s)
		return st.Floor >= oldFloor+4000, fmt.Sprintf("%+v", st)
	})
	// The pruner plans a drop of the held records and passes it over
	// again and again while the read runs.
	waits := n.dropWaits.Load()
	waitFor(t, "drop waiting for the held read", func() (bool, string) {
		w := n.dropWaits.Load() - waits
		return w >= 5, fmt.Sprintf("%d passes waited", w)
	})
	sid := n.st.snapshot().sids[s]
	if err := eachRecord(txn, sid, oldFloor, oldFloor+1, false, func(pos, blockRec) (bool, error) { return true, nil }); err != nil {
		t.Errorf("the held read lost the record at %d: %v", oldFloor, err)
	}
	if _, first := storedRecords(t, n, s); first > oldFloor {
		t.Errorf("records from %d dropped while a read that began before their expiry ran", first)
	}
	end()
	waitFor(t, "dropped after the read ended", func() (bool, string) {
		st := stats(t, n, s)
		stored, first := storedRecords(t, n, s)
		return stored <= st.Count+dropAlign-1, fmt.Sprintf("%+v; %d records stored from offset %d", st, stored, first)
	})
	items, _, err := collectItems(n.Query(context.Background(), event.QueryRequest{Query: aql.MustParse("FROM 'machine:1'")}))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, it := range items {
		if it.Kind == event.KindEvent {
			got++
		}
	}
	if uint64(got) != stats(t, n, s).Count {
		t.Errorf("tag query after drops gave %d events, stream holds %d", got, stats(t, n, s).Count)
	}
}

// migrationWant is a query's answer before an upgrade.
type migrationWant struct {
	q     string
	order event.Order
	items []event.Item
}

// queryItems answers q in order.
func queryItems(t *testing.T, n *Store, q string, order event.Order) []event.Item {
	t.Helper()
	items, _, err := collectItems(n.Query(context.Background(), event.QueryRequest{Query: aql.MustParse(q), Order: order}))
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// writeV2Database writes a database of layout version 2 (records keyed by
// Lamport time) into dir: a events tagged "a" and "machine:1", b tagged
// "b", stream 0 pruned to floor (expired records stay until a drop). It
// returns the answers of a few queries to compare after the upgrade.
func writeV2Database(t *testing.T, dir string, a, b int, floor uint64) []migrationWant {
	t.Helper()
	n, err := openKeyed(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, n, a, 250, "a", "machine:1")
	publishN(t, n, b, 100, "b")
	s := n.DefaultStream()
	if err := n.pruneTo(context.Background(), n.st.snapshot().sids[s], s, floor); err != nil {
		t.Fatal(err)
	}
	var wants []migrationWant
	for _, q := range []string{"FROM allEvents", "FROM 'b'", "FROM 'machine:1'"} {
		for _, o := range []event.Order{event.Asc, event.Desc, event.StreamAsc} {
			wants = append(wants, migrationWant{q, o, queryItems(t, n, q, o)})
		}
	}
	n.Close()

	// Rewrite the records under version 2 keys.
	db := openDataDB(t, dir)
	moved := 0
	err = db.Update(func(txn *badger.Txn) error {
		err := eachBlock(txn, []byte{pfxEvent}, func(k []byte, sid uint32, first uint64, recs []blockRec) error {
			for i, r := range recs {
				p := pos{lamport: r.lamport, sid: sid, offset: first + uint64(i)}
				rec, err := decodeRecord(r) // stored records of version 2 stand alone
				if err != nil {
					return err
				}
				if err := txn.Set(appendPos([]byte{pfxEventV2}, p), appendRecord(nil, &rec)); err != nil {
					return err
				}
				moved++
			}
			return txn.Delete(k)
		})
		if err != nil {
			return err
		}
		return txn.Set(keyFormat, u64(formatV2))
	})
	db.Close()
	if err != nil || moved != a+b {
		t.Fatalf("rewriting as version 2: %d records, %v", moved, err)
	}
	return wants
}

// TestMigrateV2Records: a version 2 database (records keyed by Lamport
// time) opens with every event, in the same order, its records in blocks,
// nothing of the old keys left, and a tag index written again without the
// expired events.
func TestMigrateV2Records(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir}
	const floor = 1100
	wants := writeV2Database(t, dir, 3000, 1000, floor)

	n, err := openKeyed(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if v := getFormat(t, n); v != formatCurrent {
		t.Errorf("layout %d after opening a version 2 database", v)
	}
	for _, w := range wants {
		if got := queryItems(t, n, w.q, w.order); !reflect.DeepEqual(got, w.items) {
			t.Errorf("%s in order %v: %d items after the upgrade, %d before, or different", w.q, w.order, len(got), len(w.items))
		}
	}
	for tag, want := range map[string]int{"a": 3000 - floor, "machine:1": 3000 - floor, "b": 1000} {
		got := tagIndex(t, n)[tag]
		if len(got) != want || got[0].offset < floor {
			t.Errorf("rebuilt tag index lists %d events of %q from offset %d, want %d from %d on", len(got), tag, got[0].offset, want, floor)
		}
	}
	err = n.st.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxEventV2}})
		defer it.Close()
		if it.Rewind(); it.Valid() {
			return fmt.Errorf("version 2 record %x left", it.Item().Key())
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestMissingRecordIsAnError: a record missing inside a query's bounds
// (a damaged database) fails the query in every order instead of leaving a
// silent gap.
func TestMissingRecordIsAnError(t *testing.T) {
	n := openTest(t, t.TempDir())
	publishN(t, n, 10, 10, "x")
	s := n.DefaultStream()
	sid := n.st.snapshot().sids[s]
	// The ten events share a block: store it again without offset 5.
	err := n.st.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(blockKey(sid, 0))
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		recs, err := decodeBlock(v, nil)
		if err != nil || len(recs) != 10 {
			return fmt.Errorf("block of %d records: %v", len(recs), err)
		}
		var b blockBuilder
		put := func(sid uint32, first uint64, val []byte) { err = errors.Join(err, txn.Set(blockKey(sid, first), val)) }
		for i, r := range recs {
			if i != 5 {
				rec, derr := decodeRecord(r)
				if derr != nil {
					return derr
				}
				b.add(pos{lamport: r.lamport, sid: sid, offset: uint64(i)}, &rec, put)
			}
		}
		b.flush(put)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []event.Order{event.Asc, event.Desc, event.StreamAsc} {
		_, _, err := collectItems(n.Query(context.Background(), event.QueryRequest{Query: aql.MustParse("FROM allEvents"), Order: o}))
		if err == nil || !strings.Contains(err.Error(), "no record at offset 5") {
			t.Errorf("order %v: query error %v, want one naming offset 5", o, err)
		}
	}
	// Bounds that leave the gap out read fine.
	items, _, err := collectItems(n.Query(context.Background(), event.QueryRequest{Query: aql.MustParse("FROM allEvents"), Lower: event.OffsetMap{s: 5}, Order: event.Desc}))
	if err != nil || len(items) != 5 {
		t.Errorf("query above the gap: %d items, %v", len(items), err)
	}
}

// TestCappedNodeWithRetention: a node whose database is capped (as on
// 32-bit devices) keeps taking events into a stream whose retention is
// below the cap: expired records leave the disk, so the cap is never
// reached for long.
func TestCappedNodeWithRetention(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 24 MB")
	}
	const limit, keep = 8 << 20, 2 << 20
	routes := []expiry.Route{{From: "allEvents", Into: "bulk"}}
	streams := map[string]expiry.Retention{"bulk": {MaxBytes: keep}}
	n := openTest(t, t.TempDir(), withStreams(routes, streams), func(c *Config) {
		c.Storage = Storage{MemTableSize: 1 << 20, BlockCacheSize: 1 << 20, MinFreeBytes: 1, MaxDBBytes: limit}
		c.PruneInterval = time.Hour // drops come when due, not from the timer
	})
	raw := make([]byte, 2000) // random: incompressible
	rng := rand.NewChaCha8([32]byte{3})
	refused := 0
	for i := 0; i < 6000; {
		rng.Read(raw)
		drafts := []event.Draft{{Payload: payload(t, raw)}, {Payload: payload(t, raw[:1000])}}
		_, err := n.Publish(context.Background(), "com.example.cap", drafts)
		switch {
		case err == nil:
			i++
		case errors.Is(err, event.ErrStorageFull) && refused < 200:
			refused++
			time.Sleep(50 * time.Millisecond) // a drop is on its way
		default:
			t.Fatalf("after %d publishes (%d refused): %v", i, refused, err)
		}
	}
	s := n.StreamIDs()["bulk"]
	waitFor(t, "pruned to maxSize", func() (bool, string) {
		st := stats(t, n, s)
		return st.Bytes <= keep, fmt.Sprintf("%+v", st)
	})
	t.Logf("18 MB published, %d publishes refused for a while; stream holds %+v", refused, stats(t, n, s))
}
