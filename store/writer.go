package store

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// The writer is the only goroutine that writes events. Publishers hand it
// requests; it takes every request that is waiting, writes them in one Badger
// transaction and commits once, so concurrent publishers share one fsync
// (group commit). Offsets and Lamport times are assigned here, which keeps
// every stream gapless and every origin's Lamport times increasing.
type writer struct {
	st      *engine
	clock   *lamport.Clock
	key     ed25519.PrivateKey // signs the heads of this node's streams
	cfg     Config
	reqs    chan *writeReq
	closing <-chan struct{}
	done    chan struct{}
	now     func() time.Time

	maxSize  int64        // bytes one transaction may carry
	maxCount int64        // entries one transaction may carry
	minFree  atomic.Int64 // free disk bytes below which writes are refused

	// settle answers the requests that bookkeeping decides without a
	// write (kv.go); nil answers none.
	settle func(batch []*writeReq) []*writeReq

	// skipSpaceCheck is set while writePrunesOnly (prune.go) writes.
	skipSpaceCheck bool
	// spaceShort is set when checkSpace refuses a batch, and kick wakes
	// the pruner then: expired records go from the disk at once (drop.go).
	spaceShort atomic.Bool
	kick       func()

	// vlog caches the size of the sealed value-log files for checkSpace,
	// which runs before every batch: listing the database directory that
	// often costs a small device more than the batch.
	vlog struct {
		at    time.Time
		bytes int64
	}
}

// writeReq is one change for the writer: all of it lands in one
// transaction or none. It is one of
//
//   - a publish: drafts of appID, each into stream or its entry of streams,
//     with a book (idempotency key, guard) or none;
//   - key-value writes alone: a book and no drafts (kv.go);
//   - an ingest of a verified range of another node's stream (ingest);
//   - a pruning batch of stream (prune).
type writeReq struct {
	stream event.StreamID
	size   int64 // estimated transaction bytes
	count  int64 // transaction entries
	res    chan writeRes

	appID  string
	drafts []event.Draft
	tags   [][]string // deduplicated tags per draft
	// streams, if set, is each draft's stream (routes.go); else every
	// draft goes to stream.
	streams []event.StreamID
	// book is the request's bookkeeping (kv.go): key-value writes, an
	// idempotency key, a guard. Nil for most requests.
	book *book

	ingest *ingestReq
	prune  *pruneOp
}

// ingestReq is a verified range of another node's stream: consecutive
// offsets, the origin's signed head at the last of them and, if set, the
// blocks that hold the events' records as a peer stored them.
type ingestReq struct {
	events []event.Event
	head   chain.SignedHead
	blocks []chain.Block
}

type writeRes struct {
	metas []event.Meta
	err   error
}

// entryOverhead approximates Badger's per-entry accounting beyond key and
// value bytes.
const entryOverhead = 16

func newWriter(st *engine, clock *lamport.Clock, key ed25519.PrivateKey, cfg Config, closing <-chan struct{}) *writer {
	w := &writer{
		st:       st,
		key:      key,
		clock:    clock,
		cfg:      cfg,
		reqs:     make(chan *writeReq),
		closing:  closing,
		done:     make(chan struct{}),
		now:      time.Now,
		maxSize:  st.db.MaxBatchSize() * 8 / 10,
		maxCount: st.db.MaxBatchCount() * 8 / 10,
	}
	w.minFree.Store(cfg.Storage.MinFreeBytes)
	if cfg.Now != nil {
		w.now = cfg.Now
	}
	return w
}

// estimate fills req.size and req.count, and checks that req fits one
// transaction.
func (w *writer) estimate(req *writeReq) error {
	var size, count int64
	var ingested []event.Event
	if req.ingest != nil {
		ingested = req.ingest.events
	}
	for _, e := range ingested {
		size += blockKeyLen + int64(len(e.Payload)+len(e.AppID)+32) + entryOverhead + 10
		count++
		for _, t := range e.Tags {
			size += 2*int64(len(t)) + 4 + posKeyLen + entryOverhead
			count++
		}
	}
	for i, d := range req.drafts {
		// event record, stream index, tag index entries
		size += blockKeyLen + int64(len(d.Payload)+len(req.appID)+32) + entryOverhead
		size += 10 // its share of the batch's stream index run
		count++
		for _, t := range req.tags[i] {
			size += int64(len(t)) + 2 + posKeyLen + entryOverhead
			count++
		}
		for _, t := range d.Tags {
			size += int64(len(t)) + 2
		}
	}
	req.size, req.count = size+streamKeyLen+64+maxRunHeadBytes, count+3
	if req.book != nil {
		s, c := req.book.cost(len(req.drafts))
		req.size, req.count = req.size+s, req.count+c
	}
	if req.size > w.maxSize || req.count > w.maxCount {
		return fmt.Errorf("%w: %d events need about %d bytes in %d entries; one transaction may carry at most %d bytes in %d entries: split it",
			event.ErrTooLarge, len(req.drafts)+len(ingested), req.size, req.count, w.maxSize, w.maxCount)
	}
	return nil
}

// enqueue hands req to the writer and returns once the writer has taken
// it, without waiting for its commit; the answer arrives on req.res. Once
// taken, a request is always answered.
func (w *writer) enqueue(ctx context.Context, req *writeReq) error {
	req.res = make(chan writeRes, 1)
	select {
	case w.reqs <- req:
		return nil
	case <-w.done:
		return fmt.Errorf("publish: %w: node is closed", event.ErrUnavailable)
	case <-ctx.Done():
		return fmt.Errorf("publish: %w", ctx.Err())
	}
}

// submit hands req to the writer and waits for its answer.
func (w *writer) submit(ctx context.Context, req *writeReq) ([]event.Meta, error) {
	if err := w.enqueue(ctx, req); err != nil {
		return nil, err
	}
	// Once taken, a request is always answered; a cancelled ctx no longer
	// stops it, so the caller learns whether its events were stored.
	res := <-req.res
	return res.metas, res.err
}

// run collects requests while the previous batch commits, so publishers
// arriving during an fsync form the next batch instead of waiting for the
// writer to come back for them. One batch commits at a time, in order, so a
// failed batch never leaves a gap behind a later one.
func (w *writer) run() {
	defer close(w.done)
	batches := make(chan []*writeReq)
	committed := make(chan struct{})
	go func() {
		for b := range batches {
			w.commit(b)
			committed <- struct{}{}
		}
		close(committed)
	}()
	var pending []*writeReq
	busy := false
	for {
		var send chan []*writeReq
		var next []*writeReq
		if !busy && len(pending) > 0 {
			send, next = batches, w.take(&pending)
		}
		select {
		case req := <-w.reqs:
			pending = append(pending, req)
		case send <- next:
			busy = true
		case <-committed:
			busy = false
		case <-w.closing:
			// Requests already taken are committed; nothing new is taken.
			if send != nil {
				pending = append(next, pending...)
			}
			if busy {
				<-committed
			}
			for len(pending) > 0 {
				batches <- w.take(&pending)
				<-committed
			}
			close(batches)
			<-committed
			return
		}
		if send != nil && !busy {
			// The batch was not sent: put it back in front.
			pending = append(next, pending...)
		}
	}
}

// take removes from the front of *pending the requests that fit one
// transaction (at least one) and returns them.
func (w *writer) take(pending *[]*writeReq) []*writeReq {
	p := *pending
	var size, count int64
	n := 0
	for n < len(p) && (n == 0 || (size+p[n].size <= w.maxSize && count+p[n].count <= w.maxCount && !splitBefore(p[:n], p[n]))) {
		size += p[n].size
		count += p[n].count
		n++
	}
	batch := p[:n:n]
	*pending = append([]*writeReq(nil), p[n:]...)
	return batch
}

// commit writes batch in one transaction and answers every request in it.
func (w *writer) commit(batch []*writeReq) {
	if w.settle != nil {
		if batch = w.settle(batch); len(batch) == 0 {
			return
		}
	}
	w.st.writeMu.Lock()
	res, err := w.write(batch)
	w.st.writeMu.Unlock()
	for i, req := range batch {
		if err != nil {
			req.res <- writeRes{err: err}
		} else {
			req.res <- res[i]
		}
	}
}

// checkSpace refuses writes while free disk space is below the reserve: the
// configured minimum plus half the database's tables. A Badger compaction
// writes its new tables before deleting the old ones, and with keys growing
// at several places (events, stream index, tag index) one compaction may
// rewrite much of a level; TestRealDiskFull fails with an eighth.
func (w *writer) checkSpace() error {
	if w.st.readOnly != nil {
		return fmt.Errorf("publish: %w", w.st.readOnly)
	}
	if w.cfg.InMemory {
		return nil
	}
	free, err := freeBytes(w.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("publish: checking free disk space: %w", err)
	}
	var tables int64
	for _, t := range w.st.db.Tables() {
		tables += int64(t.OnDiskSize)
	}
	if limit := w.cfg.Storage.MaxDBBytes; limit > 0 {
		if time.Since(w.vlog.at) > time.Second {
			w.vlog.at, w.vlog.bytes = time.Now(), vlogBytes(filepath.Join(w.cfg.DataDir, "db"))
		}
		if size := tables + w.vlog.bytes; size >= limit {
			return fmt.Errorf("publish: %w: the database holds %d bytes, at its cap storage.maxDBBytes of %d bytes (on 32-bit devices the cap keeps Badger's memory-mapped files within the address space); let retention expire events or raise the cap", event.ErrStorageFull, size, limit)
		}
	}
	if reserve := w.minFree.Load() + tables/2; free < reserve {
		return fmt.Errorf("publish: %w: %d bytes free on the data directory's disk, below the reserve of %d bytes", event.ErrStorageFull, free, reserve)
	}
	return nil
}

// storageError wraps a database error, marking a full disk as ErrStorageFull
// and a transaction over Badger's limits as ErrTooLarge.
func storageError(op string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device"):
		return fmt.Errorf("%s: %w: %v", op, event.ErrStorageFull, err)
	case errors.Is(err, badger.ErrTxnTooBig):
		return fmt.Errorf("%s: %w: %v", op, event.ErrTooLarge, err)
	case errors.Is(err, badger.ErrDBClosed):
		return fmt.Errorf("%s: %w: %v", op, event.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
