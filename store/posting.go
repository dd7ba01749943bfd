package store

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"

	"github.com/dgraph-io/badger/v4"
)

// The tag index holds postings: one entry per tag, stream and write batch
// (since layout version 4), not one per event, because a Badger entry
// costs about as much to write as the event's record and the index's
// entries were most of what a node catching up on a peer's events wrote.
// A posting is keyed by the position of its first event and lists the
// events after it as increments, each with where its record's block starts
// (block.go; since version 6), so loading an event is one lookup of a
// known key:
//
//	t <tag> 0x00 <lamport:8> <sid:4> <offset:8> -> b0:uvarint {Δoffset:uvarint Δlamport:uvarint b:uvarint}*
//
// where b is the event's offset minus its block's first (at most 255: a
// block never crosses a multiple of dropAlign). A posting holds events of
// one stream in offset order, whose Lamport times increase, at most
// postingMaxEvents of them and all within
// postingSpan Lamport ticks of the first. The span is what lets a read
// find the postings that reach into a Lamport range (they start at most
// postingSpan-1 ticks before it) and know, reading backwards, when no
// posting still unread can hold a later event.
const (
	postingSpan      = 1 << 14
	postingMaxEvents = 1024
)

var errBadPosting = errors.New("node: malformed tag index posting")

// ref is an event's position and the first offset of its record's block.
type ref struct {
	pos
	block uint64
}

// eachPosted calls f with each event of the posting whose first event is
// at first and whose value is v, in offset order, until f returns false.
func eachPosted(first pos, v []byte, f func(ref) bool) error {
	// A block starts at most dropAlign-1 offsets before its events.
	blockOf := func(offset, d uint64) (uint64, error) {
		if d > offset || d >= dropAlign {
			return 0, errBadPosting
		}
		return offset - d, nil
	}
	bd, k := binary.Uvarint(v)
	if k <= 0 {
		return errBadPosting
	}
	block, err := blockOf(first.offset, bd)
	if err != nil {
		return err
	}
	r := ref{pos: first, block: block}
	v = v[k:]
	if !f(r) {
		return nil
	}
	for len(v) > 0 {
		var d [3]uint64
		for i := range d {
			x, k := binary.Uvarint(v)
			if k <= 0 {
				return errBadPosting
			}
			d[i], v = x, v[k:]
		}
		p := r.pos
		if d[0] == 0 || d[1] == 0 || p.offset+d[0] < p.offset || p.lamport+d[1] < p.lamport || p.lamport+d[1]-first.lamport >= postingSpan {
			return errBadPosting
		}
		p.offset += d[0]
		p.lamport += d[1]
		if block, err = blockOf(p.offset, d[2]); err != nil {
			return err
		}
		r = ref{pos: p, block: block}
		if !f(r) {
			return nil
		}
	}
	return nil
}

// startPosted starts a posting's value with its first event, r.
func startPosted(b []byte, r ref) []byte {
	return binary.AppendUvarint(b, r.offset-r.block)
}

// appendPosted appends the increments from prev to r.
func appendPosted(b []byte, prev pos, r ref) []byte {
	b = binary.AppendUvarint(b, r.offset-prev.offset)
	b = binary.AppendUvarint(b, r.lamport-prev.lamport)
	return binary.AppendUvarint(b, r.offset-r.block)
}

// postingBuilder collects a write batch's postings.
type postingBuilder struct {
	open map[postingID]*openPosting
}

type postingID struct {
	tag string
	sid uint32
}

type openPosting struct {
	first, last pos
	n           int
	val         []byte
}

// add puts the event r into tag's open posting of r's stream, or into a
// new one when the open one is full or r does not follow it; a posting it
// closes goes to put.
func (b *postingBuilder) add(tag string, r ref, put func(tag string, first pos, val []byte)) {
	if b.open == nil {
		b.open = map[postingID]*openPosting{}
	}
	id := postingID{tag, r.sid}
	o := b.open[id]
	switch {
	case o == nil:
		o = &openPosting{}
		b.open[id] = o
	case o.n < postingMaxEvents && r.offset > o.last.offset && r.lamport > o.last.lamport && r.lamport-o.first.lamport < postingSpan:
		o.val = appendPosted(o.val, o.last, r)
		o.last = r.pos
		o.n++
		return
	default:
		put(tag, o.first, o.val)
	}
	*o = openPosting{first: r.pos, last: r.pos, n: 1, val: startPosted(nil, r)}
}

// flush hands every open posting to put and empties b.
func (b *postingBuilder) flush(put func(tag string, first pos, val []byte)) {
	for id, o := range b.open {
		put(id.tag, o.first, o.val)
	}
	clear(b.open)
}

// posting is one tag index entry: its first event's position and its
// value (valid only as long as the transaction it was read in).
type posting struct {
	first pos
	val   []byte
}

// tagPostings yields tag's postings that may hold events with Lamport
// times in [minL, maxL], in key order (reversed with desc). With desc, a
// posting's events may be later than those of postings yielded before it,
// by less than postingSpan.
func tagPostings(txn *badger.Txn, tag string, minL, maxL uint64, desc bool) iter.Seq2[posting, error] {
	return func(yield func(posting, error) bool) {
		pfx := tagPrefix(tag)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx, Reverse: desc})
		defer it.Close()
		// Postings that start earlier hold no event from minL on.
		earliest := minL - min(minL, postingSpan-1)
		switch {
		case !desc:
			it.Seek(binary.BigEndian.AppendUint64(pfx, earliest))
		case maxL == ^uint64(0):
			it.Seek(append(pfx[:len(pfx)-1:len(pfx)-1], 1))
		default:
			it.Seek(binary.BigEndian.AppendUint64(pfx, maxL+1))
		}
		for ; it.Valid(); it.Next() {
			item := it.Item()
			first, err := decodePos(item.Key()[len(pfx):])
			if err != nil {
				yield(posting{}, fmt.Errorf("tag %q: %w", tag, err))
				return
			}
			if (!desc && first.lamport > maxL) || (desc && first.lamport < earliest) {
				return
			}
			var v []byte
			if err := item.Value(func(b []byte) error { v = b; return nil }); err != nil {
				yield(posting{}, err)
				return
			}
			if !yield(posting{first, v}, nil) {
				return
			}
		}
	}
}

// tagPositions yields the positions in tag's index within the plan's
// Lamport range that the plan admits, in (lamport, sid, offset) order
// (reversed with desc). Postings overlap in Lamport time, so positions
// wait in a heap until no posting still unread can hold an earlier one
// (a later one, with desc).
func tagPositions(txn *badger.Txn, tag string, pl *readPlan, desc bool) iter.Seq2[ref, error] {
	return func(yield func(ref, error) bool) {
		h := &posHeap{desc: desc}
		// ready reports whether the heap's top comes before every event
		// of a posting starting at Lamport time l and of those after it.
		ready := func(l uint64) bool {
			top := h.items[0].lamport
			if desc {
				return top > l+min(postingSpan-1, ^uint64(0)-l)
			}
			return top < l
		}
		for p, err := range tagPostings(txn, tag, pl.minL, pl.maxL, desc) {
			if err != nil {
				yield(ref{}, err)
				return
			}
			for h.Len() > 0 && ready(p.first.lamport) {
				if !yield(heap.Pop(h).(ref), nil) {
					return
				}
			}
			err = eachPosted(p.first, p.val, func(q ref) bool {
				if q.lamport > pl.maxL {
					return false
				}
				if q.lamport >= pl.minL && pl.admits(q.pos) {
					heap.Push(h, q)
				}
				return true
			})
			if err != nil {
				yield(ref{}, fmt.Errorf("tag %q at %d/%d: %w", tag, p.first.sid, p.first.offset, err))
				return
			}
		}
		for h.Len() > 0 {
			if !yield(heap.Pop(h).(ref), nil) {
				return
			}
		}
	}
}

// countTag counts the events in tag's index with Lamport times in [minL,
// maxL], up to limit. It is an estimate for planning: a damaged posting
// counts as far as it decodes.
func countTag(txn *badger.Txn, tag string, minL, maxL, limit uint64) uint64 {
	var c uint64
	for p, err := range tagPostings(txn, tag, minL, maxL, false) {
		if err != nil || c >= limit {
			break
		}
		eachPosted(p.first, p.val, func(q ref) bool {
			if q.lamport > maxL {
				return false
			}
			if q.lamport >= minL {
				c++
			}
			return true
		})
	}
	return min(c, limit)
}

// posHeap orders events as the tag index does, (lamport, sid, offset),
// smallest first (largest with desc).
type posHeap struct {
	items []ref
	desc  bool
}

func (h *posHeap) Len() int { return len(h.items) }
func (h *posHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if h.desc {
		a, b = b, a
	}
	if a.lamport != b.lamport {
		return a.lamport < b.lamport
	}
	if a.sid != b.sid {
		return a.sid < b.sid
	}
	return a.offset < b.offset
}
func (h *posHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *posHeap) Push(x any)    { h.items = append(h.items, x.(ref)) }
func (h *posHeap) Pop() any {
	last := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return last
}
