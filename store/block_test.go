package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// TestRecordBlocks: records written in batches of blocks (some larger than
// a block, with Lamport gaps, batches ending anywhere) come back from
// eachRecord in both directions over random ranges, and from a
// blockReader at random positions; blocks never cross an aligned range.
func TestRecordBlocks(t *testing.T) {
	db := memDB(t)
	r := rand.New(rand.NewPCG(5, 6))
	const streams = 3
	type rec struct {
		lamport uint64
		r       record
	}
	// same reports whether br decodes to h.
	same := func(br blockRec, h rec) bool {
		got, err := decodeRecord(br)
		return err == nil && br.lamport == h.lamport && reflect.DeepEqual(got, h.r)
	}
	tags := []string{"a", "b", "machine:1", "machine:2", "long tag " + strings.Repeat("x", 100)}
	held := make([][]rec, streams+1)
	var l uint64
	for range 40 {
		var b blockBuilder
		txn := db.NewTransaction(true)
		put := func(sid uint32, first uint64, val []byte) {
			recs, err := decodeBlock(val, nil)
			if err != nil || first/dropAlign != (first+uint64(len(recs))-1)/dropAlign {
				t.Errorf("block at %d of %d records: %v; it must not cross an aligned range", first, len(recs), err)
			}
			if err := txn.Set(blockKey(sid, first), val); err != nil {
				t.Fatal(err)
			}
		}
		for range 1 + r.IntN(300) {
			sid := uint32(1 + r.IntN(streams))
			l += uint64(1 + r.IntN(3))
			size := 1 + r.IntN(200)
			if r.IntN(50) == 0 {
				size = blockBytes + r.IntN(1000)
			}
			hr := record{timestamp: r.Int64N(1<<40) - 1<<39, appID: []string{"app", "com.example.other"}[r.IntN(2)], tags: []string{},
				payload: bytes.Repeat([]byte{byte(r.IntN(200))}, size)}
			for _, t := range tags {
				if r.IntN(3) == 0 {
					hr.tags = append(hr.tags, t)
				}
			}
			off := uint64(len(held[sid]))
			b.add(pos{lamport: l, sid: sid, offset: off}, &hr, put)
			held[sid] = append(held[sid], rec{l, hr})
		}
		b.flush(put)
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	txn := db.NewTransaction(false)
	defer txn.Discard()
	for sid := uint32(1); sid <= streams; sid++ {
		n := uint64(len(held[sid]))
		for i := range 100 {
			from, to := r.Uint64N(n+1), r.Uint64N(n+1)
			if i == 0 {
				from, to = 0, n
			}
			from, to = min(from, to), max(from, to)
			for _, desc := range []bool{false, true} {
				want := from
				if desc {
					want = to - 1
				}
				got := 0
				err := eachRecord(txn, sid, from, to, desc, func(p pos, v blockRec) (bool, error) {
					h := held[sid][p.offset]
					if p.offset != want || p.lamport != h.lamport || !same(v, h) {
						return false, fmt.Errorf("got %d/%d, want offset %d lamport %d", p.offset, p.lamport, want, h.lamport)
					}
					got++
					if desc {
						want--
					} else {
						want++
					}
					return true, nil
				})
				if err != nil || uint64(got) != to-from {
					t.Fatalf("stream %d [%d, %d) desc=%v: %d records, %v", sid, from, to, desc, got, err)
				}
			}
		}
		if err := eachRecord(txn, sid, n, n+1, false, func(pos, blockRec) (bool, error) { return true, nil }); err == nil {
			t.Errorf("stream %d: a record past the end read", sid)
		}
	}
	rd := newBlockReader(txn, &readPlan{})
	defer rd.close()
	for i := range 2000 {
		sid := uint32(1 + r.IntN(streams))
		off := r.Uint64N(uint64(len(held[sid])))
		h := held[sid][off]
		b, err := rd.find(sid, off, noBlock)
		if err != nil || !same(b.recs[off-b.first], h) {
			t.Fatalf("stream %d offset %d: %v", sid, off, err)
		}
		if i%2 == 0 {
			// The same through a known block start, and a wrong one.
			if b2, err := rd.find(sid, off, b.first); err != nil || b2.first != b.first {
				t.Fatalf("stream %d offset %d from its block at %d: %v", sid, off, b.first, err)
			}
			if _, err := rd.find(sid, off, b.first+uint64(len(b.recs))); err == nil {
				t.Fatalf("stream %d offset %d found in the block after its own", sid, off)
			}
		}
	}
	if _, err := rd.find(1, uint64(len(held[1])), noBlock); err == nil {
		t.Error("found a block past the end")
	}
	// Each stream in offset order, block after block, interleaved.
	at := make([]uint64, streams+1)
	for left := true; left; {
		left = false
		for sid := uint32(1); sid <= streams; sid++ {
			if at[sid] == uint64(len(held[sid])) {
				continue
			}
			left = true
			b, err := rd.next(sid, at[sid])
			if err != nil {
				t.Fatalf("stream %d: no block at %d: %v", sid, at[sid], err)
			}
			for i, br := range b.recs {
				if h := held[sid][b.first+uint64(i)]; !same(br, h) {
					t.Fatalf("stream %d offset %d differs", sid, b.first+uint64(i))
				}
			}
			at[sid] += uint64(len(b.recs))
		}
	}
	if _, err := rd.next(1, uint64(len(held[1]))); err == nil {
		t.Error("next found a block past the end")
	}
	// Damaged blocks are errors.
	for _, v := range [][]byte{nil, {1}, {1, 5, 0}, {1, 1, 0, 0, 1, 0}, {0x80}, {0}, {0, 1, 'a'}, {0, 0, 0, 2, 1, 'a'}, {0, 0, 0, 0}} {
		if _, err := decodeBlock(v, nil); err == nil {
			t.Errorf("block %x decoded", v)
		}
	}
	// A record naming a tag the header lacks, or with unknown flags.
	for _, v := range [][]byte{{0, 0, 0, 1, 1, 'a', 1, 4, 0, 0, 1, 1}, {0, 0, 0, 0, 1, 2, 0x80, 0}} {
		recs, err := decodeBlock(v, nil)
		if err != nil || len(recs) != 1 {
			t.Fatalf("block %x: %d records, %v", v, len(recs), err)
		}
		if _, _, _, err := decodeHeader(recs[0]); err == nil {
			t.Errorf("record of block %x decoded", v)
		}
	}
}

// memDB opens an in-memory Badger database for the test.
func memDB(t *testing.T) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openDataDB opens the Badger database of the closed node in dir, with
// small value-log files as the node uses on 32-bit builds: Badger maps
// twice their size, and its default of 1 GiB leaves no room in a 32-bit
// address space for the node opened next.
func openDataDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithLogger(nil).WithCompression(options.Snappy).WithValueLogFileSize(16 << 20))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// eachBlock calls f with the key, stream, first offset and records of each
// record block under prefix (a stream's, or all with pfxEvent), in key
// order; the key and records are f's to keep.
func eachBlock(txn *badger.Txn, prefix []byte, f func(key []byte, sid uint32, first uint64, recs []blockRec) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().KeyCopy(nil)
		sid, first, err := decodeBlockKey(k)
		if err != nil {
			return err
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		recs, err := decodeBlock(v, nil)
		if err != nil {
			return fmt.Errorf("block %d/%d: %w", sid, first, err)
		}
		if err := f(k, sid, first, recs); err != nil {
			return err
		}
	}
	return nil
}
