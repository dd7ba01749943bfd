package node

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/event"
)

// seqReader loads events whose positions come in increasing key order
// (one stream's events, in offset order) through one Badger iterator: an
// event stored right after the previous one loaded costs a Next, not a
// point lookup that searches every level and decodes a block again. Where
// events lie between (the next stream's), it seeks forward.
type seqReader struct {
	it      *badger.Iterator
	pl      *readPlan
	key     []byte
	started bool
}

// newSeqReader opens an iterator over txn's event records; close it
// before txn ends.
func newSeqReader(txn *badger.Txn, pl *readPlan) *seqReader {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxEvent}, PrefetchValues: false})
	return &seqReader{it: it, pl: pl, key: make([]byte, 0, eventKeyLen)}
}

// load reads and decodes the event at p, which must sort after the
// position loaded before.
func (s *seqReader) load(p pos) (*event.Event, error) {
	s.key = appendEventKey(s.key[:0], p)
	if s.started && s.it.Valid() {
		s.it.Next()
	}
	s.started = true
	if !s.it.Valid() || !bytes.Equal(s.it.Item().Key(), s.key) {
		s.it.Seek(s.key)
		if !s.it.Valid() || !bytes.Equal(s.it.Item().Key(), s.key) {
			return nil, fmt.Errorf("index names a missing event %d/%d", p.sid, p.offset)
		}
	}
	var ev *event.Event
	err := s.it.Item().Value(func(v []byte) error {
		var err error
		ev, err = s.pl.decode(p, v, allEvents)
		return err
	})
	return ev, err
}

func (s *seqReader) close() { s.it.Close() }

// eachRecord calls f with the position and stored value of each of sid's
// records with offsets in [from, to), in offset order (reversed with
// desc), until f returns false or an error. A record missing in the range
// is an error, not a gap.
func eachRecord(txn *badger.Txn, sid uint32, from, to uint64, desc bool, f func(p pos, v []byte) (bool, error)) error {
	if from >= to {
		return nil
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: eventPrefix(sid), Reverse: desc})
	defer it.Close()
	// want is the offset the next record must have. A reverse seek lands
	// on the last key at or before the one given, and a record's key
	// extends its offset with the Lamport time.
	want, seek := from, from
	if desc {
		want, seek = to-1, to
	}
	for it.Seek(eventSeek(sid, seek)); ; it.Next() {
		if !it.Valid() {
			return fmt.Errorf("no record at offset %d", want)
		}
		item := it.Item()
		p, err := decodeEventKey(item.Key())
		if err != nil {
			return err
		}
		if p.offset != want {
			return fmt.Errorf("no record at offset %d", want)
		}
		var goOn bool
		if err := item.Value(func(v []byte) error {
			goOn, err = f(p, v)
			return err
		}); err != nil || !goOn {
			return err
		}
		switch {
		case desc && want == from, !desc && want == to-1:
			return nil
		case desc:
			want--
		default:
			want++
		}
	}
}
