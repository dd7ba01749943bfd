package store

import (
	"github.com/dgraph-io/badger/v4"
)

// The read registry: every read of event records is numbered while it
// runs, so that a drop of expired records (drop.go) can wait until the
// reads that began before it have ended instead of pulling records from
// under them.

// beginRead opens a read transaction for reading events and registers it
// until the returned func, which discards it, is called: a drop planned
// meanwhile waits for it (see dropper).
func (s *engine) beginRead() (*badger.Txn, func()) {
	s.readMu.Lock()
	id := s.nextRead
	s.nextRead++
	if s.reads == nil {
		s.reads = map[uint64]struct{}{}
	}
	s.reads[id] = struct{}{}
	s.readMu.Unlock()
	txn := s.db.NewTransaction(false)
	return txn, func() {
		txn.Discard()
		s.readMu.Lock()
		delete(s.reads, id)
		s.readMu.Unlock()
	}
}

// readMark numbers the next read to begin.
func (s *engine) readMark() uint64 {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	return s.nextRead
}

// oldestRead returns the number of the oldest read still running, or
// readMark if none is.
func (s *engine) oldestRead() uint64 {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	oldest := s.nextRead
	for id := range s.reads {
		oldest = min(oldest, id)
	}
	return oldest
}
