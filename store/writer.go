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

// writeReq is one publish, or one ingest of a verified range from a peer:
// all of its events land in one transaction or none.
type writeReq struct {
	appID  string
	stream event.StreamID
	drafts []event.Draft
	tags   [][]string // deduplicated tags per draft
	size   int64      // estimated transaction bytes
	count  int64      // transaction entries
	res    chan writeRes

	// For an ingest: the events, consecutive offsets of stream, and the
	// origin's signed head at the last of them; blocks, if set, hold the
	// events' records as a peer stored them (IngestAsync with blocks).
	ingest []event.Event
	head   *chain.SignedHead
	blocks []chain.Block

	// book is the request's bookkeeping (kv.go): key-value writes, an
	// idempotency key, a guard. Nil for most requests.
	book *book

	// streams, if set, is each draft's stream (routing, prune.go); else
	// every draft goes to stream.
	streams []event.StreamID
	// prune, if set, is a pruning batch of stream (prune.go).
	prune *pruneOp
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
	for _, e := range req.ingest {
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
			event.ErrTooLarge, len(req.drafts)+len(req.ingest), req.size, req.count, w.maxSize, w.maxCount)
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

// write stores batch in one transaction. A request that cannot be stored
// on its own (an ingest that does not continue its stream) gets its own
// error in the results; an error of the whole transaction is returned.
func (w *writer) write(batch []*writeReq) ([]writeRes, error) {
	if !w.skipSpaceCheck {
		if err := w.checkSpace(); err != nil {
			w.spaceShort.Store(true)
			if w.kick != nil {
				w.kick()
			}
			return w.writePrunesOnly(batch, err)
		}
	}
	total := 0
	for _, req := range batch {
		total += len(req.drafts)
	}
	first, err := w.clock.Reserve(uint64(total))
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	observed := w.clock.Now()

	st := w.st
	txn := st.db.NewTransaction(true)
	defer txn.Discard()

	// Streams first written by this batch are interned now and forgotten
	// again if the commit fails.
	st.mu.Lock()
	added := 0
	next := map[uint32]uint64{}
	for _, req := range batch {
		for _, s := range reqStreams(req) {
			sid, ok := st.sids[s]
			if !ok {
				sid = st.addStream(s)
				added++
			}
			next[sid] = uint64(st.present[sid] + 1)
		}
	}
	firstNew := uint32(len(st.names) - added)
	heads := make(map[uint32]*chain.SignedHead, len(next))
	for sid := range next {
		heads[sid] = st.heads[sid]
	}
	st.mu.Unlock()
	rollback := func() {
		w.clock.Rollback(first, uint64(total))
		st.mu.Lock()
		for range added {
			st.removeLastStream()
		}
		st.mu.Unlock()
	}

	var x expBatch // bytes and floors of streams (prune.go)
	set := func(k, v []byte) {
		if err == nil {
			err = txn.Set(k, v)
		}
	}
	// putPosting writes a tag index posting (posting.go).
	var postings postingBuilder
	putPosting := func(tag string, first pos, val []byte) { set(tagKey(tag, first), val) }
	// putBlock writes a block of records (block.go).
	var blocks blockBuilder
	putBlock := func(sid uint32, first uint64, val []byte) { set(blockKey(sid, first), val) }
	// putEvent adds an event's record to its stream's block and the event
	// to its tags' postings.
	putEvent := func(p pos, r *record) {
		block, size := blocks.add(p, r, putBlock)
		x.grow(p.sid, eventBytes(size, r.tags))
		for _, t := range r.tags {
			postings.add(t, ref{p, block}, putPosting)
		}
	}
	// putStored adds a block a peer stored, of events at p's stream from
	// p's offset on, as it is, and the events to their tags' postings.
	var recs []blockRec
	putStored := func(p pos, data []byte, events []event.Event) error {
		var err error
		if recs, err = blockRecords(data, recs[:0]); err != nil || len(recs) != len(events) {
			return fmt.Errorf("ingest: a block of %d events at %d holds %d records: %w", len(events), p.offset, len(recs), err)
		}
		blocks.putRaw(p.sid, p.offset, data, putBlock)
		for j := range recs {
			q := pos{lamport: recs[j].lamport, sid: p.sid, offset: p.offset + uint64(j)}
			x.grow(q.sid, eventBytes(len(recs[j].rec), events[j].Tags))
			for _, t := range events[j].Tags {
				postings.add(t, ref{q, p.offset}, putPosting)
			}
		}
		return nil
	}
	// putRun writes a stream index run ending at its signed head.
	putRun := func(sid uint32, firstOffset uint64, lamports []uint64, head *chain.SignedHead) {
		set(streamKey(sid, firstOffset), appendRunHead(appendRun(nil, lamports), head))
	}
	for sid := firstNew; sid < firstNew+uint32(added); sid++ {
		set(nameKey(sid), []byte(st.names[sid]))
	}

	ts := w.now().UnixMicro()
	l := first
	local := map[uint32][]event.Event{} // this batch's own events per stream, to sign
	out := make([]writeRes, len(batch))
	for i, req := range batch {
		sid := st.sids[req.stream]
		if req.prune != nil {
			req.prune.sid = sid
			var terr error
			if out[i].err, terr = w.applyPrune(txn, req.prune, &x, next, heads); terr != nil && err == nil {
				err = terr
			}
			continue
		}
		if req.ingest != nil {
			if got, want := req.ingest[0].Offset, next[sid]; got != want {
				out[i].err = fmt.Errorf("ingest %s at offset %d, present is %d: %w", req.stream, got, int64(want)-1, chain.ErrStale)
				continue
			}
			lamports := make([]uint64, len(req.ingest))
			for j := range req.ingest {
				e := &req.ingest[j]
				if req.blocks == nil {
					putEvent(pos{lamport: e.Lamport, sid: sid, offset: e.Offset}, &record{timestamp: e.Timestamp, tags: e.Tags, appID: e.AppID, payload: e.Payload})
				}
				lamports[j] = e.Lamport
				observed = max(observed, e.Lamport)
			}
			for _, b := range req.blocks {
				if perr := putStored(pos{sid: sid, offset: b.First}, b.Data, req.ingest[b.First-req.ingest[0].Offset:][:b.Count]); perr != nil && err == nil {
					err = perr
				}
			}
			putRun(sid, next[sid], lamports, req.head)
			next[sid] += uint64(len(req.ingest))
			heads[sid] = req.head
			continue
		}
		out[i].metas = make([]event.Meta, len(req.drafts))
		for j, d := range req.drafts {
			stream := req.stream
			if req.streams != nil {
				stream = req.streams[j]
			}
			sid := st.sids[stream]
			e := event.Event{Lamport: l, Stream: stream, Offset: next[sid], Timestamp: ts, Tags: req.tags[j], AppID: req.appID, Payload: d.Payload}
			putEvent(pos{lamport: l, sid: sid, offset: e.Offset}, &record{timestamp: ts, tags: e.Tags, appID: e.AppID, payload: e.Payload})
			local[sid] = append(local[sid], e)
			out[i].metas[j] = event.Meta{Lamport: l, Offset: e.Offset, Stream: stream, Timestamp: ts}
			l++
			next[sid]++
		}
	}
	blocks.flush(putBlock)
	postings.flush(putPosting)
	// Each of this node's streams gets one run per batch, ending at a head
	// signed with the node key: the checkpoint peers verify the chain at.
	for sid, evs := range local {
		prev := chain.Genesis
		if h := heads[sid]; h != nil {
			prev = h.Hash
		}
		last := evs[len(evs)-1]
		sh, serr := chain.SignHead(w.key, chain.Head{Stream: last.Stream, Offset: last.Offset, Lamport: last.Lamport, Hash: chain.LinkAll(prev, evs)})
		if serr != nil && err == nil {
			err = serr
		}
		lamports := make([]uint64, len(evs))
		for j := range evs {
			lamports[j] = evs[j].Lamport
		}
		putRun(sid, evs[0].Offset, lamports, &sh)
		heads[sid] = &sh
	}
	if err == nil {
		err = w.putBooks(txn, batch, out)
	}
	x.persist(st, set)
	w.clock.Observe(observed)
	set(keyLamport, u64(max(w.clock.Now(), l-1)))
	if err == nil {
		err = txn.Commit()
	}
	if err != nil {
		rollback()
		return nil, storageError("write", err)
	}

	st.mu.Lock()
	for sid, n := range next {
		st.present[sid] = int64(n) - 1
		st.heads[sid] = heads[sid]
	}
	st.total += uint64(total)
	for i, req := range batch {
		if req.ingest != nil && out[i].err == nil {
			st.total += uint64(len(req.ingest))
		}
	}
	x.apply(st)
	close(st.changed)
	st.changed = make(chan struct{})
	st.mu.Unlock()
	return out, nil
}

// checkSpace refuses writes while free disk space is below the reserve: the
// configured minimum plus half the database's tables. A Badger compaction
// writes its new tables before deleting the old ones, and with keys growing
// at several places (events, stream index, tag index) one compaction may
// rewrite much of a level; TestRealDiskFull fails with an eighth.
func (w *writer) checkSpace() error {
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
