package node

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// pfxEventV2 is the prefix of event records up to layout version 2:
//
//	o <lamport:8> <sid:4> <offset:8> -> record
const pfxEventV2 = 'o'

// upgrade brings a database of an older layout version to the current one.
func (s *store) upgrade(version uint64) error {
	if version < formatV3 {
		if err := s.migrateV3(); err != nil {
			return err
		}
	}
	// Version 3's tag index entries are postings of one event already.
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, u64(formatV4)) }); err != nil {
		return fmt.Errorf("upgrading the database to layout version %d: %w", formatV4, err)
	}
	return nil
}

// migrateV3 rewrites the event records of a version 1 or 2 database under
// their version 3 keys and then sets the version. It can stop anywhere (a
// crash, a full disk) and run again: the old records go only once all are
// copied, and copying a record twice writes the same key and value.
func (s *store) migrateV3() error {
	s.log.Info("upgrading the database layout: rewriting every event record once", slog.Int("version", formatV3))
	start := time.Now()
	var n int
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxEventV2}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			p, err := decodePos(item.Key()[1:])
			if err != nil {
				return fmt.Errorf("record key %x: %w", item.Key(), err)
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := wb.Set(eventKey(p), v); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	if err == nil && n > 0 {
		err = s.db.DropPrefix([]byte{pfxEventV2})
	}
	if err == nil {
		err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, u64(formatV3)) })
	}
	if err != nil {
		return fmt.Errorf("upgrading the database to layout version %d (it resumes at the next start): %w", formatV3, err)
	}
	s.log.Info("upgraded the database layout", slog.Int("version", formatV3), slog.Int("events", n), slog.Duration("took", time.Since(start)))
	return nil
}
