package node

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
// version 3's tag index entries are postings of one event already, and the
// records of versions 1 to 4 move into blocks.
func (s *store) upgrade(version uint64) error {
	old := byte(pfxEventV4)
	if version < formatV3 {
		old = pfxEventV2
	}
	return s.migrateRecords(old)
}

// migrateRecords rewrites the event records under prefix old into blocks
// and then sets the current version. It can stop anywhere (a crash, a
// full disk) and run again: the old records go only once all are copied,
// and copying them again writes the same blocks.
func (s *store) migrateRecords(old byte) error {
	s.log.Info("upgrading the database layout: rewriting every event record once", slog.Int("version", formatCurrent))
	start := time.Now()
	var n int
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.db.View(func(txn *badger.Txn) error {
		var blocks blockBuilder
		var werr error
		put := func(sid uint32, first uint64, val []byte) {
			if werr == nil {
				werr = wb.Set(blockKey(sid, first), val)
			}
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{old}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid() && werr == nil; it.Next() {
			item := it.Item()
			p, err := decodeOldRecordKey(item.Key())
			if err != nil {
				return fmt.Errorf("record key %x: %w", item.Key(), err)
			}
			if err := item.Value(func(v []byte) error { blocks.add(p, v, put); return nil }); err != nil {
				return err
			}
			n++
		}
		blocks.flush(put)
		return werr
	})
	if err == nil {
		err = wb.Flush()
	}
	if err == nil && n > 0 {
		err = s.db.DropPrefix([]byte{old})
	}
	if err == nil {
		err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, u64(formatCurrent)) })
	}
	if err != nil {
		return fmt.Errorf("upgrading the database to layout version %d (it resumes at the next start): %w", formatCurrent, err)
	}
	s.log.Info("upgraded the database layout", slog.Int("version", formatCurrent), slog.Int("events", n), slog.Duration("took", time.Since(start)))
	return nil
}
