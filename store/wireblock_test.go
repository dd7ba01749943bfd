package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// readBlocks returns the entries ReadBlocks yields for (from, to], with
// copies of their blocks' bytes, which ReadBlocks may reuse.
func readBlocks(t *testing.T, n *Store, s event.StreamID, from int64, to uint64) []chain.Entry {
	t.Helper()
	var out []chain.Entry
	for en, err := range n.ReadBlocks(context.Background(), s, from, to) {
		if err != nil {
			t.Fatal(err)
		}
		b := *en.Block
		b.Data = slices.Clone(b.Data)
		en.Block = &b
		out = append(out, en)
	}
	return out
}

// TestReadBlocksMatchesReadRange: for ranges that start and end inside
// blocks, at block and run ends and at aligned offsets, the blocks
// ReadBlocks yields decode (as a peer decodes them) to exactly the events
// ReadRange yields, with the same heads; blocks end at every head. Both
// for an origin's stream and for a copy a replica stored.
func TestReadBlocksMatchesReadRange(t *testing.T) {
	ctx := context.Background()
	a := openTest(t, t.TempDir())
	total := 0
	for i := 0; total < 700; i++ {
		drafts := make([]event.Draft, 1+(i*37)%150)
		for j := range drafts {
			p := map[string]any{"i": i, "j": j}
			if j%9 == 0 { // large enough to be stored compressed
				p["text"] = bytes.Repeat([]byte("compressible "), 80)
			}
			drafts[j] = event.Draft{Tags: []string{"a", fmt.Sprintf("n:%d", j%3)}, Payload: payload(t, p)}
		}
		if _, err := a.Publish(ctx, "com.example.blocks", drafts); err != nil {
			t.Fatal(err)
		}
		total += len(drafts)
	}
	// b holds a copy, stored range by range as a pull stores it.
	b := openTest(t, t.TempDir())
	ranges, heads := signedRanges(t, a)
	for i, r := range ranges {
		if err := ingest(ctx, b, r, heads[i]); err != nil {
			t.Fatal(err)
		}
	}
	s := a.DefaultStream()
	cuts := []int64{-1, 0, 5, 254, 255, 256, 300, 511, 512, int64(heads[0].Offset), int64(heads[1].Offset) + 1, int64(total) - 2, int64(total) - 1}
	for _, n := range []*Store{a, b} {
		for _, from := range cuts {
			for _, to := range cuts {
				if to <= from {
					continue
				}
				want := readAll(t, n, s, from)
				want = want[:min(len(want), int(to-from))]
				wantHeads := map[uint64]*chain.SignedHead{}
				for en, err := range n.ReadRange(ctx, s, from, uint64(to)) {
					if err != nil {
						t.Fatal(err)
					}
					if en.Head != nil {
						wantHeads[en.Event.Offset] = en.Head
					}
				}
				var got []event.Event
				gotHeads := map[uint64]*chain.SignedHead{}
				for _, en := range readBlocks(t, n, s, from, uint64(to)) {
					blk := en.Block
					evs, err := decodeWireBlock(nil, s, *blk, math.MaxInt)
					if err != nil {
						t.Fatalf("(%d, %d]: block at %d: %v", from, to, blk.First, err)
					}
					if len(evs) != blk.Count || blk.First != uint64(from+1)+uint64(len(got)) {
						t.Fatalf("(%d, %d]: block at %d of %d events decodes to %d, after %d events", from, to, blk.First, blk.Count, len(evs), len(got))
					}
					got = append(got, evs...)
					if en.Head != nil {
						gotHeads[blk.Last()] = en.Head
					}
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("(%d, %d]: blocks hold %d events, ReadRange %d; or they differ", from, to, len(got), len(want))
				}
				if !reflect.DeepEqual(gotHeads, wantHeads) {
					t.Fatalf("(%d, %d]: heads at block ends %d, ReadRange has %d", from, to, len(gotHeads), len(wantHeads))
				}
			}
		}
	}
}

// wireBlock encodes events as one block, with records as a node stores
// them and the flags of record i (if set) replaced by flags[i].
func wireBlock(evs []event.Event, flags map[int]byte) chain.Block {
	var data []byte
	var l uint64
	for i, e := range evs {
		rec := appendRecord(nil, &record{timestamp: e.Timestamp, tags: e.Tags, appID: e.AppID, payload: e.Payload})
		if f, ok := flags[i]; ok {
			rec[1] = f
		}
		data = appendBlockRec(data, e.Lamport-l, rec)
		l = e.Lamport
	}
	return chain.Block{First: evs[0].Offset, Data: data}
}

func TestDecodeWireBlockRejects(t *testing.T) {
	s := event.StreamID("a-0")
	evs := []event.Event{
		{Stream: s, Offset: 4, Lamport: 10, Timestamp: 1, Tags: []string{"x"}, AppID: "app", Payload: []byte{0xf6}},
		{Stream: s, Offset: 5, Lamport: 12, Timestamp: 2, Tags: []string{"x", "y"}, AppID: "app", Payload: bytes.Repeat([]byte("abc"), 400)},
	}
	good := wireBlock(evs, nil)
	if got, err := decodeWireBlock(nil, s, good, 2000); err != nil || !reflect.DeepEqual(got, evs) {
		t.Fatalf("good block: %v\n got %+v\nwant %+v", err, got, evs)
	}
	if recs, err := decodeBlock(good.Data, nil); err != nil || recs[1].rec[1] != flagZstd {
		t.Fatal("the second payload is not compressed: the test misses the compressed path")
	}
	zstdBad := wireBlock(evs[:1], map[int]byte{0: flagZstd}) // a plain payload said to be compressed
	tests := []struct {
		name   string
		b      chain.Block
		budget int
		want   error
	}{
		{"unknown flags", wireBlock(evs, map[int]byte{0: 0x04}), 2000, chain.ErrMalformed},
		{"not zstd", zstdBad, 2000, chain.ErrMalformed},
		{"compressed over budget", good, 1000, chain.ErrTooMuchUnverified},
		{"plain over budget", wireBlock(evs[:1], nil), 0, chain.ErrTooMuchUnverified},
		{"past the largest offset", chain.Block{First: math.MaxUint64, Data: good.Data}, 2000, chain.ErrMalformed},
		{"garbage", chain.Block{Data: []byte{0x01, 0xff, 0xff}}, 2000, chain.ErrMalformed},
		{"truncated", chain.Block{First: 4, Data: good.Data[:len(good.Data)-1]}, 2000, chain.ErrMalformed},
		{"Lamport time not increasing", chain.Block{First: 4, Data: wireBlock([]event.Event{evs[0], {Lamport: 10, Payload: []byte{1}}}, nil).Data}, 2000, chain.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeWireBlock(nil, s, tt.b, tt.budget); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzDecodeWireBlock: whatever a peer sends as a block decodes to events
// at consecutive offsets within the budget, or to an error of the two
// kinds a pull expects; never a panic.
func FuzzDecodeWireBlock(f *testing.F) {
	s := event.StreamID("a-0")
	f.Add(uint64(0), wireBlock([]event.Event{{Lamport: 1, Tags: []string{"t"}, AppID: "a", Payload: []byte{1}}}, nil).Data)
	f.Add(uint64(7), wireBlock([]event.Event{{Lamport: 3, Payload: bytes.Repeat([]byte{7}, 900)}, {Lamport: 9, Tags: []string{"a", "b"}}}, nil).Data)
	f.Add(uint64(math.MaxUint64), []byte{0x01, 0x02, 0x01, 0x00})
	// A block of layout 7, with a header its records refer to.
	var bb blockBuilder
	var v7 []byte
	for i, r := range []record{{timestamp: 5, tags: []string{"a", "b"}, appID: "x", payload: []byte{1}}, {timestamp: 9, tags: []string{"b", "c"}, appID: "y", payload: []byte{2, 3}}} {
		bb.add(pos{lamport: uint64(3 + i), sid: 1, offset: uint64(i)}, &r, nil)
	}
	bb.flush(func(_ uint32, _ uint64, val []byte) { v7 = val })
	f.Add(uint64(0), v7)
	f.Fuzz(func(t *testing.T, first uint64, data []byte) {
		const budget = 1 << 16
		evs, err := decodeWireBlock(nil, s, chain.Block{First: first, Data: data}, budget)
		if err != nil {
			if !errors.Is(err, chain.ErrMalformed) && !errors.Is(err, chain.ErrTooMuchUnverified) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		size := 0
		for i, e := range evs {
			if e.Stream != s || e.Offset != first+uint64(i) {
				t.Fatalf("event %d: %s/%d", i, e.Stream, e.Offset)
			}
			size += len(e.Payload)
		}
		if len(evs) == 0 || size > budget {
			t.Fatalf("%d events of %d payload bytes", len(evs), size)
		}
	})
}

// TestIngestBlocksKeepsThem: a replica given the blocks a range arrived in
// stores their bytes as they are, and reads back, by stream and through
// the tag index, what the origin holds; a block that spans two aligned
// ranges of offsets is encoded again instead.
func TestIngestBlocksKeepsThem(t *testing.T) {
	ctx := context.Background()
	a := openTest(t, t.TempDir())
	for i := range 9 {
		drafts := make([]event.Draft, 40+i*13)
		for j := range drafts {
			p := map[string]any{"i": i, "j": j}
			if j%7 == 0 {
				p["text"] = bytes.Repeat([]byte("compressible "), 60)
			}
			drafts[j] = event.Draft{Tags: []string{"a", fmt.Sprintf("n:%d", j%3)}, Payload: payload(t, p)}
		}
		if _, err := a.Publish(ctx, "com.example.blocks", drafts); err != nil {
			t.Fatal(err)
		}
	}
	s := a.DefaultStream()
	b := openTest(t, t.TempDir())
	rb := b
	var evs []event.Event
	var blocks []chain.Block
	merged := false
	for _, en := range readBlocks(t, a, s, -1, math.MaxUint64) {
		blk := *en.Block
		got, err := decodeWireBlock(nil, s, blk, math.MaxInt)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, got...)
		if n := len(blocks); !merged && n > 0 && blocks[n-1].Last()/dropAlign != blk.First/dropAlign {
			// Join the two blocks around an aligned offset: not storable.
			prev := &blocks[n-1]
			all, _ := decodeBlock(prev.Data, nil)
			more, _ := decodeBlock(blk.Data, nil)
			prev.Data = appendBlock(nil, append(all, more...))
			prev.Count += blk.Count
			merged = true
		} else {
			blocks = append(blocks, blk)
		}
		if en.Head == nil {
			continue
		}
		wait, err := rb.IngestAsync(ctx, evs, blocks, *en.Head)
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		evs, blocks = nil, nil
	}
	if !merged {
		t.Fatal("no block was joined across an aligned offset: the test misses the fallback")
	}
	if got, want := readAll(t, b, s, -1), readAll(t, a, s, -1); !reflect.DeepEqual(got, want) {
		t.Fatalf("replica holds %d events, origin %d, or they differ", len(got), len(want))
	}
	for i, q := range []string{"FROM 'n:1'", "FROM 'a' & 'n:2'"} {
		req := event.QueryRequest{Query: aql.MustParse(q)}
		if i == 1 {
			req.Order = event.Desc
		}
		if got, want := query(t, b, req), query(t, a, req); !reflect.DeepEqual(got, want) || len(got) == 0 {
			t.Fatalf("%s: replica %d events, origin %d, or they differ", q, len(got), len(want))
		}
	}
	// The first block is stored byte for byte as the origin stored it.
	sidA, sidB := a.st.snapshot().sids[s], b.st.snapshot().sids[s]
	get := func(n *Store, sid uint32) []byte {
		var v []byte
		if err := n.st.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(blockKey(sid, 0))
			if err != nil {
				return err
			}
			v, err = item.ValueCopy(nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if !bytes.Equal(get(a, sidA), get(b, sidB)) {
		t.Fatal("the replica's first block differs from the origin's")
	}
	// No block of the replica spans two aligned ranges (drop.go).
	if err := b.st.db.View(func(txn *badger.Txn) error {
		return eachBlock(txn, eventPrefix(sidB), func(_ []byte, _ uint32, first uint64, recs []blockRec) error {
			if last := first + uint64(len(recs)) - 1; first/dropAlign != last/dropAlign {
				t.Errorf("block %d-%d spans an aligned offset", first, last)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
}
