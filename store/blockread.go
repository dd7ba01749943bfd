package store

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
)

// eachRecord calls f with the position and stored record of each of sid's
// events with offsets in [from, to), in offset order (reversed with desc),
// until f returns false or an error. A record missing in the range is an
// error, not a gap.
func eachRecord(txn *badger.Txn, sid uint32, from, to uint64, desc bool, f func(p pos, r blockRec) (bool, error)) error {
	if from >= to {
		return nil
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: eventPrefix(sid), Reverse: desc})
	defer it.Close()
	// want is the offset the next record must have, last the one to end
	// at. The block holding from starts in from's aligned range; a reverse
	// seek lands on the last block starting at or before to-1.
	want, last, seek := from, to-1, from&^(dropAlign-1)
	if desc {
		want, last, seek = to-1, from, to-1
	}
	var recs []blockRec
	for it.Seek(blockKey(sid, seek)); ; it.Next() {
		if !it.Valid() {
			return fmt.Errorf("no record at offset %d", want)
		}
		item := it.Item()
		_, first, err := decodeBlockKey(item.Key())
		if err != nil {
			return err
		}
		done := false
		err = item.Value(func(v []byte) error {
			var err error
			if recs, err = decodeBlock(v, recs[:0]); err != nil {
				return fmt.Errorf("block at %d: %w", first, err)
			}
			for i := range recs {
				j := i
				if desc {
					j = len(recs) - 1 - i
				}
				off := first + uint64(j)
				if (!desc && off < want) || (desc && off > want) {
					continue
				}
				if off != want {
					break
				}
				goOn, err := f(pos{lamport: recs[j].lamport, sid: sid, offset: off}, recs[j])
				if err != nil || !goOn || want == last {
					done = true
					return err
				}
				if desc {
					want--
				} else {
					want++
				}
			}
			return nil
		})
		if err != nil || done {
			return err
		}
		if (!desc && first > want) || (desc && first+uint64(len(recs)) <= want) {
			return fmt.Errorf("no record at offset %d", want)
		}
	}
}

// blockReader loads events by position, in any order, keeping the block
// read last for each stream. Where a block starts comes from the tag index
// (a posting names each event's block: one point lookup) or from the
// cached block (the next one of a stream read in offset order starts right
// after it: the forward iterator's next entry); otherwise a seek finds it.
type blockReader struct {
	txn   *badger.Txn
	it    *badger.Iterator // reverse, opened at the first seek
	fwd   *badger.Iterator // forward, for blocks read in order
	pl    *readPlan
	cache map[uint32]*cachedBlock
}

type cachedBlock struct {
	first uint64
	val   []byte
	recs  []blockRec
}

// holds reports whether b holds the record at offset.
func (b *cachedBlock) holds(offset uint64) bool {
	return offset >= b.first && offset-b.first < uint64(len(b.recs))
}

// noBlock is a block start a load does not know.
const noBlock = ^uint64(0)

// newBlockReader returns a reader of txn's record blocks; close it before
// txn ends.
func newBlockReader(txn *badger.Txn, pl *readPlan) *blockReader {
	return &blockReader{txn: txn, pl: pl, cache: map[uint32]*cachedBlock{}}
}

// load reads the event at p, whose record's block starts at offset block
// (or noBlock), and decodes it if q selects it (nil if not).
func (r *blockReader) load(p pos, block uint64, q *aql.Query) (*event.Event, error) {
	b, err := r.at(p.sid, p.offset, block)
	if err != nil {
		return nil, fmt.Errorf("index names a missing event %d/%d: %w", p.sid, p.offset, err)
	}
	rec := b.recs[p.offset-b.first]
	if rec.lamport != p.lamport {
		return nil, fmt.Errorf("%w: event %d/%d has Lamport time %d, the index says %d", errBadRecord, p.sid, p.offset, rec.lamport, p.lamport)
	}
	return r.pl.decode(p, rec, q)
}

// at returns the block of sid holding offset, which starts at offset block
// (or noBlock), from the cache or read into it.
func (r *blockReader) at(sid uint32, offset, block uint64) (*cachedBlock, error) {
	b := r.cache[sid]
	switch {
	case b != nil && b.holds(offset):
		return b, nil
	case block == noBlock && b != nil && offset == b.first+uint64(len(b.recs)):
		return r.next(sid, offset)
	default:
		return r.find(sid, offset, block)
	}
}

// find reads the block of sid holding offset, starting at block if known,
// into the cache.
func (r *blockReader) find(sid uint32, offset, block uint64) (*cachedBlock, error) {
	var item *badger.Item
	if block != noBlock {
		var err error
		if item, err = r.txn.Get(blockKey(sid, block)); errors.Is(err, badger.ErrKeyNotFound) {
			return nil, errNoBlock
		} else if err != nil {
			return nil, err
		}
	} else {
		if r.it == nil {
			r.it = r.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxEvent}, Reverse: true})
		}
		// A reverse seek lands on the last block starting at or before.
		if r.it.Seek(blockKey(sid, offset)); !r.it.Valid() {
			return nil, errNoBlock
		}
		item = r.it.Item()
	}
	return r.fill(sid, offset, item)
}

// next reads the block of sid starting at offset, the one after the block
// read last: a Next of the forward iterator, not a lookup through every
// level, when that block was the iterator's last.
func (r *blockReader) next(sid uint32, offset uint64) (*cachedBlock, error) {
	key := blockKey(sid, offset)
	if r.fwd == nil {
		r.fwd = r.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxEvent}})
		r.fwd.Seek(key)
	} else if r.fwd.Next(); !r.fwd.Valid() || !bytes.Equal(r.fwd.Item().Key(), key) {
		r.fwd.Seek(key)
	}
	if !r.fwd.Valid() || !bytes.Equal(r.fwd.Item().Key(), key) {
		return nil, errNoBlock
	}
	return r.fill(sid, offset, r.fwd.Item())
}

// fill decodes item, sid's block that should hold offset, into the cache.
func (r *blockReader) fill(sid uint32, offset uint64, item *badger.Item) (*cachedBlock, error) {
	s, first, err := decodeBlockKey(item.Key())
	if err != nil {
		return nil, err
	}
	if s != sid {
		return nil, errNoBlock
	}
	b := r.cache[sid]
	if b == nil {
		b = &cachedBlock{}
		r.cache[sid] = b
	}
	b.first, b.recs = first, b.recs[:0]
	if b.val, err = item.ValueCopy(b.val[:0]); err != nil {
		return nil, err
	}
	if b.recs, err = decodeBlock(b.val, b.recs); err != nil {
		delete(r.cache, sid)
		return nil, fmt.Errorf("block at %d: %w", first, err)
	}
	if !b.holds(offset) {
		return nil, errNoBlock
	}
	return b, nil
}

var errNoBlock = errors.New("no record block holds it")

func (r *blockReader) close() {
	for _, it := range []*badger.Iterator{r.it, r.fwd} {
		if it != nil {
			it.Close()
		}
	}
}
