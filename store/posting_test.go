package store

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
)

type postedEntry struct {
	tag   string
	first pos
	val   []byte
}

func buildPostings(b *postingBuilder, out *[]postedEntry) func(string, pos, []byte) {
	return func(tag string, first pos, val []byte) {
		*out = append(*out, postedEntry{tag, first, slices.Clone(val)})
	}
}

// TestPostingBuilderSplits: a posting ends when it is full, when the next
// event lies postingSpan or more ticks after its first, and when an event
// does not follow the last; every event comes back from its posting.
func TestPostingBuilderSplits(t *testing.T) {
	var b postingBuilder
	var got []postedEntry
	put := buildPostings(&b, &got)
	var in []ref
	l := uint64(100)
	for off := range uint64(2*postingMaxEvents + 10) {
		in = append(in, ref{pos{lamport: l, sid: 1, offset: off}, off &^ 15})
		l++
	}
	// A jump of a full span in Lamport time.
	l += postingSpan
	for off := uint64(2*postingMaxEvents + 10); off < 2*postingMaxEvents+20; off++ {
		in = append(in, ref{pos{lamport: l, sid: 1, offset: off}, off - off%dropAlign})
		l += 3
	}
	for _, r := range in {
		b.add("x", r, put)
	}
	// Not following (a second batch of a stream would not do this, but a
	// damaged peer range must not break the index).
	stray := ref{pos{lamport: 5, sid: 1, offset: 1}, 0}
	b.add("x", stray, put)
	b.flush(put)
	if len(got) != 5 {
		t.Fatalf("%d postings, want 5: two full ones, the rest before the jump, after it, the stray event", len(got))
	}
	var back []ref
	for _, e := range got {
		n := 0
		if err := eachPosted(e.first, e.val, func(r ref) bool { back = append(back, r); n++; return true }); err != nil {
			t.Fatal(err)
		}
		if n > postingMaxEvents {
			t.Errorf("posting of %d events", n)
		}
	}
	byOffset := func(a, b ref) int { return cmp.Compare(a.offset*1e9+a.lamport, b.offset*1e9+b.lamport) }
	slices.SortFunc(back, byOffset)
	want := append(slices.Clone(in), stray)
	slices.SortFunc(want, byOffset)
	if !slices.Equal(back, want) {
		t.Fatal("events read back from the postings differ from those added")
	}
	// Damaged values are errors, not panics or wrong events.
	for _, v := range [][]byte{nil, {0x80}, {0x80, 0x02}, {0, 1}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 1, 0xff, 0xff, 0x7f, 0}, {0, 1, 1, 200}} {
		if err := eachPosted(pos{lamport: 1, sid: 1, offset: 100}, v, func(ref) bool { return true }); err == nil {
			t.Errorf("value %x decoded", v)
		}
	}
}

// TestTagPositionsRandom: a tag's positions come out of overlapping
// postings of several streams in exact (lamport, sid, offset) order, both
// ways, within random Lamport ranges and offset bounds, and countTag
// counts them.
func TestTagPositionsRandom(t *testing.T) {
	db := memDB(t)
	r := rand.New(rand.NewPCG(3, 4))
	const streams = 5
	type ev struct {
		p    pos
		tags []string
	}
	var all []ev
	next := make([]uint64, streams+1)
	lam := make([]uint64, streams+1)
	// Write batches: each a few streams' runs, lamports jumping now and
	// then by more than a span so postings split.
	for range 60 {
		var b postingBuilder
		txn := db.NewTransaction(true)
		put := func(tag string, first pos, val []byte) {
			if err := txn.Set(tagKey(tag, first), slices.Clone(val)); err != nil {
				t.Fatal(err)
			}
		}
		for range 1 + r.IntN(3) {
			sid := uint32(1 + r.IntN(streams))
			for range r.IntN(300) {
				step := uint64(1 + r.IntN(4))
				if r.IntN(200) == 0 {
					step += postingSpan
				}
				lam[sid] += step
				p := pos{lamport: lam[sid], sid: sid, offset: next[sid]}
				next[sid]++
				var tags []string
				if r.IntN(2) == 0 {
					tags = append(tags, "half")
				}
				if r.IntN(20) == 0 {
					tags = append(tags, "rare")
				}
				for _, tg := range tags {
					b.add(tg, ref{p, p.offset &^ 7}, put)
				}
				all = append(all, ev{p, tags})
			}
		}
		b.flush(put)
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	maxLam := slices.Max(lam)
	txn := db.NewTransaction(false)
	defer txn.Discard()
	for i := range 200 {
		pl := &readPlan{bounds: make([]bound, streams+1), minL: 0, maxL: ^uint64(0)}
		if i > 0 {
			a, b := r.Uint64N(maxLam+1), r.Uint64N(maxLam+1)
			pl.minL, pl.maxL = min(a, b), max(a, b)
		}
		for sid := 1; sid <= streams; sid++ {
			if r.IntN(5) > 0 || i == 0 {
				lo := int64(-1)
				if i > 0 && next[sid] > 0 {
					lo = r.Int64N(int64(next[sid])) - 1
				}
				pl.bounds[sid] = bound{on: true, lo: lo, hi: int64(next[sid]) - 1}
			}
		}
		for _, tag := range []string{"half", "rare", "none"} {
			var want []pos
			for _, e := range all {
				if slices.Contains(e.tags, tag) && e.p.lamport >= pl.minL && e.p.lamport <= pl.maxL && pl.admits(e.p) {
					want = append(want, e.p)
				}
			}
			slices.SortFunc(want, func(a, b pos) int {
				return cmp.Or(cmp.Compare(a.lamport, b.lamport), cmp.Compare(a.sid, b.sid), cmp.Compare(a.offset, b.offset))
			})
			for _, desc := range []bool{false, true} {
				var got []pos
				for r, err := range tagPositions(txn, tag, pl, desc) {
					if err != nil {
						t.Fatal(err)
					}
					if r.block != r.offset&^7 {
						t.Fatalf("event %d/%d: block at %d", r.sid, r.offset, r.block)
					}
					got = append(got, r.pos)
				}
				w := slices.Clone(want)
				if desc {
					slices.Reverse(w)
				}
				if !slices.Equal(got, w) {
					t.Fatalf("plan %d tag %q desc=%v [%d, %d]: got %d positions, want %d", i, tag, desc, pl.minL, pl.maxL, len(got), len(w))
				}
			}
			var inRange uint64
			for _, e := range all {
				if slices.Contains(e.tags, tag) && e.p.lamport >= pl.minL && e.p.lamport <= pl.maxL {
					inRange++
				}
			}
			if c := countTag(txn, tag, pl.minL, pl.maxL, ^uint64(0)); c != inRange {
				t.Fatalf("plan %d tag %q: countTag %d, want %d", i, tag, c, inRange)
			}
			if c := countTag(txn, tag, pl.minL, pl.maxL, 3); c != min(inRange, 3) {
				t.Fatalf("countTag up to 3: %d", c)
			}
		}
	}
}

// tagIndex reads every posting of the database: tag -> the events listed.
func tagIndex(t *testing.T, n *Store) map[string][]pos {
	t.Helper()
	out := map[string][]pos{}
	err := n.st.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxTag}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			i := slices.Index(k, 0)
			tag := string(k[1:i])
			first, err := decodePos(k[i+1:])
			if err != nil {
				return err
			}
			err = it.Item().Value(func(v []byte) error {
				return eachPosted(first, v, func(r ref) bool { out[tag] = append(out[tag], r.pos); return true })
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range out {
		slices.SortFunc(ps, func(a, b pos) int { return cmp.Compare(a.offset, b.offset) })
	}
	return out
}

// TestPrunePostings: publishing in batches makes postings of many events;
// pruning to floors inside them leaves exactly the kept events in the tag
// index (the straddling postings rewritten), and index reads still agree
// with scans.
func TestPrunePostings(t *testing.T) {
	n := openTest(t, t.TempDir())
	const total = 3000
	for done := 0; done < total; {
		k := min(700, total-done)
		drafts := make([]event.Draft, k)
		for i := range drafts {
			tags := []string{"all"}
			if (done+i)%3 == 0 {
				tags = append(tags, "third")
			}
			drafts[i] = event.Draft{Tags: tags, Payload: payload(t, done+i)}
		}
		if _, err := n.Publish(context.Background(), "com.example.test", drafts); err != nil {
			t.Fatal(err)
		}
		done += k
	}
	s := n.DefaultStream()
	sid := n.st.snapshot().sids[s]
	if idx := tagIndex(t, n); len(idx["all"]) != total || len(idx["third"]) != total/3 {
		t.Fatalf("tag index lists %d and %d events", len(idx["all"]), len(idx["third"]))
	}
	for _, floor := range []uint64{1000, 1001, 1200, 2099, 2100, 2999} {
		if err := n.pruneTo(context.Background(), sid, s, floor); err != nil {
			t.Fatalf("prune to %d: %v", floor, err)
		}
		idx := tagIndex(t, n)
		for tag, every := range map[string]uint64{"all": 1, "third": 3} {
			want := idxOffsets(floor, total, every)
			var got []uint64
			for _, p := range idx[tag] {
				got = append(got, p.offset)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("floor %d: tag %q lists %d events from %v, want %d from %d", floor, tag, len(got), got[:min(1, len(got))], len(want), floor)
			}
		}
		for _, src := range []string{"FROM 'third'", "FROM 'all' & 'third'"} {
			q := aql.MustParse(src)
			txn := n.st.db.NewTransaction(false)
			pl, err := n.resolve(txn, n.st.snapshot(), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, desc := range []bool{false, true} {
				scan, err := drain(n.scan(context.Background(), txn, pl, q, desc))
				if err != nil {
					t.Fatal(err)
				}
				index, err := drain(n.readIndex(context.Background(), txn, pl, q, []string{"third"}, desc))
				if err != nil || !slices.Equal(index, scan) || len(scan) != len(idxOffsets(floor, total, 3)) {
					t.Fatalf("floor %d %s desc=%v: index read %d events (%v), scan %d", floor, src, desc, len(index), err, len(scan))
				}
			}
			txn.Discard()
		}
	}
}

// idxOffsets lists the offsets in [from, to) that are multiples of every.
func idxOffsets(from, to, every uint64) []uint64 {
	var out []uint64
	for off := from; off < to; off++ {
		if off%every == 0 {
			out = append(out, off)
		}
	}
	return out
}
