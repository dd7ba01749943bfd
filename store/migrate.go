package store

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Record keys of older layouts, one record per key:
//
//	o <lamport:8> <sid:4> <offset:8> -> record   versions 1 and 2
//	e <sid:4> <offset:8> <lamport:8> -> record   versions 3 and 4
const (
	pfxEventV2 = 'o'
	pfxEventV4 = 'e'
)

// decodeOldRecordKey parses a record key of layout versions 1 to 4.
func decodeOldRecordKey(k []byte) (pos, error) {
	if len(k) != 1+posKeyLen {
		return pos{}, errBadKey
	}
	switch k[0] {
	case pfxEventV2:
		return decodePos(k[1:])
	case pfxEventV4:
		return pos{
			sid:     binary.BigEndian.Uint32(k[1:]),
			offset:  binary.BigEndian.Uint64(k[5:]),
			lamport: binary.BigEndian.Uint64(k[13:]),
		}, nil
	}
	return pos{}, errBadKey
}

// upgrade brings a database of an older layout version to the current one:
// the records of versions 1 to 4 move into blocks, and the tag index of
// versions up to 5 is written again with where each event's block starts.
// Each step can stop anywhere (a crash, a full disk) and runs again at the
// next start. Version 7 reads the blocks of versions 5 and 6 as they are.
func (s *engine) upgrade(version uint64) error {
	if version < formatV5 {
		old := byte(pfxEventV4)
		if version < formatV3 {
			old = pfxEventV2
		}
		if err := s.migrateRecords(old); err != nil {
			return err
		}
	}
	if version < formatV6 {
		if err := s.rebuildTagIndex(); err != nil {
			return err
		}
	}
	if err := s.setFormat(formatCurrent); err != nil {
		return fmt.Errorf("upgrading the database to layout version %d: %w", formatCurrent, err)
	}
	return nil
}

// migrateRecords rewrites the event records under prefix old into blocks
// and then sets version 5. The old records go only once all are copied,
// and copying them again writes the same blocks.
func (s *engine) migrateRecords(old byte) error {
	s.log.Info("upgrading the database layout: rewriting every event record once", slog.Int("version", formatV5))
	start := time.Now()
	var n int
	err := s.writeAll(func(txn *badger.Txn, w *batchWriter) error {
		var blocks blockBuilder
		put := func(sid uint32, first uint64, val []byte) { w.set(blockKey(sid, first), val) }
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{old}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid() && w.err == nil; it.Next() {
			item := it.Item()
			p, err := decodeOldRecordKey(item.Key())
			if err != nil {
				return fmt.Errorf("record key %x: %w", item.Key(), err)
			}
			if err := item.Value(func(v []byte) error {
				r, err := decodeRecord(blockRec{rec: v})
				if err != nil {
					return fmt.Errorf("event %d/%d: %w", p.sid, p.offset, err)
				}
				blocks.add(p, &r, put)
				return nil
			}); err != nil {
				return err
			}
			n++
		}
		blocks.flush(put)
		return nil
	})
	if err == nil && n > 0 {
		err = s.db.DropPrefix([]byte{old})
	}
	if err == nil {
		err = s.setFormat(formatV5)
	}
	if err != nil {
		return fmt.Errorf("upgrading the database to layout version %d (it resumes at the next start): %w", formatV5, err)
	}
	s.log.Info("upgraded the database layout", slog.Int("version", formatV5), slog.Int("events", n), slog.Duration("took", time.Since(start)))
	return nil
}

// rebuildPostingEvents bounds the events a rebuild keeps in open postings
// (with a distinct tag per event, each is a posting of its own).
const rebuildPostingEvents = 4096

// rebuildTagIndex deletes the tag index and writes it again, as postings
// that say where each event's block starts, from the records at or above
// each stream's floor (those below expired), and then sets version 6.
// Stopped, it starts over.
func (s *engine) rebuildTagIndex() error {
	s.log.Info("upgrading the database layout: writing the tag index again", slog.Int("version", formatV6))
	start := time.Now()
	var n int
	err := s.db.DropPrefix([]byte{pfxTag})
	if err == nil {
		err = s.writeAll(func(txn *badger.Txn, w *batchWriter) error {
			var postings postingBuilder
			put := func(tag string, first pos, val []byte) { w.set(tagKey(tag, first), val) }
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxEvent}, PrefetchValues: true, PrefetchSize: 64})
			defer it.Close()
			var recs []blockRec
			var floor uint64
			open, lastSid := 0, uint32(0)
			for it.Rewind(); it.Valid() && w.err == nil; it.Next() {
				item := it.Item()
				sid, first, err := decodeBlockKey(item.Key())
				if err != nil {
					return err
				}
				if sid != lastSid {
					if floor, _, err = readFloor(txn, "", sid); err != nil {
						return err
					}
				}
				if sid != lastSid || open >= rebuildPostingEvents {
					postings.flush(put)
					open, lastSid = 0, sid
				}
				err = item.Value(func(v []byte) error {
					if recs, err = decodeBlock(v, recs[:0]); err != nil {
						return fmt.Errorf("block %d/%d: %w", sid, first, err)
					}
					for i, br := range recs {
						p := pos{lamport: br.lamport, sid: sid, offset: first + uint64(i)}
						if p.offset < floor {
							continue
						}
						r, _, _, err := decodeHeader(br)
						if err != nil {
							return fmt.Errorf("event %d/%d: %w", sid, p.offset, err)
						}
						for _, t := range r.tags {
							postings.add(t, ref{p, first}, put)
							open++
						}
						n++
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			postings.flush(put)
			return nil
		})
	}
	if err == nil {
		err = s.setFormat(formatV6)
	}
	if err != nil {
		return fmt.Errorf("upgrading the database to layout version %d (it starts over at the next start): %w", formatV6, err)
	}
	s.log.Info("upgraded the database layout", slog.Int("version", formatV6), slog.Int("events", n), slog.Duration("took", time.Since(start)))
	return nil
}

// batchWriter sets keys through a write batch; after a failed write the
// following ones do nothing and err holds the failure.
type batchWriter struct {
	wb  *badger.WriteBatch
	err error
}

func (w *batchWriter) set(k, v []byte) {
	if w.err == nil {
		w.err = w.wb.Set(k, v)
	}
}

// writeAll runs fill in a read transaction, writing what it sets through
// one write batch, which it then flushes.
func (s *engine) writeAll(fill func(txn *badger.Txn, w *batchWriter) error) error {
	w := &batchWriter{wb: s.db.NewWriteBatch()}
	defer w.wb.Cancel()
	err := s.db.View(func(txn *badger.Txn) error {
		if err := fill(txn, w); err != nil {
			return err
		}
		return w.err
	})
	if err != nil {
		return err
	}
	return w.wb.Flush()
}

// setFormat records the layout version.
func (s *engine) setFormat(version uint64) error {
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, u64(version)) })
}
