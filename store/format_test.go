package store

import (
	"context"
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// setFormat writes a layout version into a closed node's database.
func setFormat(t *testing.T, dir string, v uint64) {
	t.Helper()
	db := openDataDB(t, dir)
	defer db.Close()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, u64(v)) }); err != nil {
		t.Fatal(err)
	}
}

func getFormat(t *testing.T, n *Store) uint64 {
	t.Helper()
	var v uint64
	err := n.st.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyFormat)
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error { v = binary.BigEndian.Uint64(b); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestLayoutVersion: a new database gets the current layout, databases of
// versions 3 and 1 are upgraded in place with their events (records into
// blocks, the tag index written again), and a database of an unknown
// (newer) layout is refused with a clear error.
func TestLayoutVersion(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir}
	n, err := openKeyed(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if v := getFormat(t, n); v != formatCurrent {
		t.Fatalf("new database: layout %d, want %d", v, formatCurrent)
	}
	publish(t, n, "kept")
	n.Close()

	for _, old := range []uint64{formatV3, formatV1} {
		setFormat(t, dir, old)
		n, err = openKeyed(cfg)
		if err != nil {
			t.Fatalf("opening a version %d database: %v", old, err)
		}
		if v := getFormat(t, n); v != formatCurrent {
			t.Errorf("version %d database not upgraded: layout %d", old, v)
		}
		if o, _ := n.Offsets(context.Background()); o.Present[n.DefaultStream()] != 0 {
			t.Errorf("after the upgrade from version %d the node holds %v, want its one event", old, o.Present)
		}
		if evs := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'kept'")}); len(evs) != 1 {
			t.Errorf("after the upgrade from version %d the tag index finds %d events, want 1", old, len(evs))
		}
		n.Close()
	}

	setFormat(t, dir, formatCurrent+1)
	if n, err = openKeyed(cfg); err == nil {
		n.Close()
		t.Fatal("a database of a newer layout opened")
	} else if !strings.Contains(err.Error(), "not supported") {
		t.Errorf("error %q does not say the layout is not supported", err)
	}
}

// toLayout6 rewrites every record block of the closed node in dir in the
// encoding of layout 6 (records that stand alone) and sets version 6.
// Block starts stay, so the tag index still points at them.
func toLayout6(t *testing.T, dir string) {
	t.Helper()
	db := openDataDB(t, dir)
	defer db.Close()
	err := db.Update(func(txn *badger.Txn) error {
		err := eachBlock(txn, []byte{pfxEvent}, func(k []byte, _ uint32, _ uint64, recs []blockRec) error {
			var old []byte
			var l uint64
			for _, br := range recs {
				r, err := decodeRecord(br)
				if err != nil {
					return err
				}
				old = appendBlockRec(old, br.lamport-l, appendRecord(nil, &r))
				l = br.lamport
			}
			return txn.Set(k, old)
		})
		if err != nil {
			return err
		}
		return txn.Set(keyFormat, u64(formatV6))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestLayout6BlocksStay: a database of layout 6 opens as layout 7 without
// rewriting its blocks; its events read the same, by stream and through
// the tag index, next to events written after in blocks of layout 7; and
// a replica pulls both kinds in blocks and reads them the same.
func TestLayout6BlocksStay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	n := openTest(t, dir)
	publishN(t, n, 300, 60, "old", "n:3")
	s := n.DefaultStream()
	queries := []string{"FROM allEvents", "FROM 'old'", "FROM 'new'", "FROM 'n:3'"}
	before := map[string][]*event.Event{}
	for _, q := range queries {
		before[q] = query(t, n, event.QueryRequest{Query: aql.MustParse(q)})
	}
	n.Close()
	toLayout6(t, dir)

	n = openTest(t, dir)
	if v := getFormat(t, n); v != formatCurrent {
		t.Fatalf("layout %d after opening, want %d", v, formatCurrent)
	}
	for _, q := range queries {
		if got := query(t, n, event.QueryRequest{Query: aql.MustParse(q)}); !equalEvents(got, before[q]) {
			t.Fatalf("%s: %d events after the upgrade, %d before, or they differ", q, len(got), len(before[q]))
		}
	}
	var layout6 int
	for _, en := range readBlocks(t, n, s, -1, math.MaxUint64) {
		if en.Block.Data[0] != blockV2 {
			layout6++
		}
	}
	if layout6 == 0 {
		t.Fatal("no block of layout 6 left: the test misses them")
	}
	publishN(t, n, 150, 50, "new")

	// A replica takes both kinds through pull protocol 2.
	b := openTest(t, t.TempDir())
	var evs []event.Event
	var blocks []chain.Block
	for _, en := range readBlocks(t, n, s, -1, math.MaxUint64) {
		var err error
		if evs, err = decodeWireBlock(evs, s, *en.Block, math.MaxInt); err != nil {
			t.Fatal(err)
		}
		if blocks = append(blocks, *en.Block); en.Head == nil {
			continue
		}
		wait, err := b.IngestAsync(ctx, evs, blocks, *en.Head)
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		evs, blocks = nil, nil
	}
	for _, q := range queries {
		req := event.QueryRequest{Query: aql.MustParse(q)}
		if got, want := query(t, b, req), query(t, n, req); !equalEvents(got, want) || len(want) == 0 {
			t.Fatalf("%s: replica %d events, origin %d, or they differ", q, len(got), len(want))
		}
	}
}

// equalEvents compares events by value.
func equalEvents(a, b []*event.Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !reflect.DeepEqual(*a[i], *b[i]) {
			return false
		}
	}
	return true
}
