package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

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
	b := &batchTxn{w: w, txn: w.st.db.NewTransaction(true), observed: w.clock.Now(), local: map[uint32][]event.Event{}}
	defer b.txn.Discard()
	firstNew, added := b.intern(batch)
	rollback := func() {
		w.clock.Rollback(first, uint64(total))
		w.st.mu.Lock()
		for range added {
			w.st.removeLastStream()
		}
		w.st.mu.Unlock()
	}
	for sid := firstNew; sid < firstNew+uint32(added); sid++ {
		b.set(nameKey(sid), []byte(w.st.names[sid]))
	}

	ts := w.now().UnixMicro()
	l := first
	out := make([]writeRes, len(batch))
	for i, req := range batch {
		sid := w.st.sids[req.stream]
		switch {
		case req.prune != nil:
			req.prune.sid = sid
			var terr error
			if out[i].err, terr = w.applyPrune(b.txn, req.prune, &b.x, b.next, b.heads); terr != nil {
				b.fail(terr)
			}
		case req.ingest != nil:
			out[i].err = b.ingest(sid, req)
		default:
			out[i].metas = b.publish(req, l, ts)
			l += uint64(len(req.drafts))
		}
	}
	b.blocks.flush(b.putBlock)
	b.postings.flush(b.putPosting)
	b.signLocal()
	if b.err == nil {
		b.err = w.putBooks(b.txn, batch, out)
	}
	b.x.persist(w.st, b.set)
	w.clock.Observe(b.observed)
	b.set(keyLamport, u64(max(w.clock.Now(), l-1)))
	if b.err == nil {
		b.err = b.txn.Commit()
	}
	if b.err != nil {
		rollback()
		return nil, storageError("write", b.err)
	}
	b.publishView(batch, out, uint64(total))
	return out, nil
}

// batchTxn is the transaction of one batch while the writer builds it: the
// next offset and the head of every stream the batch writes, and what it
// adds to blocks, postings and expiry counts.
type batchTxn struct {
	w        *writer
	txn      *badger.Txn
	err      error // the transaction's first error: nothing is committed
	next     map[uint32]uint64
	heads    map[uint32]*chain.SignedHead
	observed uint64 // highest Lamport time seen
	x        expBatch
	postings postingBuilder
	blocks   blockBuilder
	recs     []blockRec               // scratch for putStored
	local    map[uint32][]event.Event // the batch's own events per stream, to sign
}

// intern reads the next offset and head of every stream of batch,
// interning the streams first written by it, which are sids firstNew on;
// the caller forgets those again if the commit fails.
func (b *batchTxn) intern(batch []*writeReq) (firstNew uint32, added int) {
	st := b.w.st
	st.mu.Lock()
	defer st.mu.Unlock()
	b.next = map[uint32]uint64{}
	for _, req := range batch {
		for _, s := range reqStreams(req) {
			sid, ok := st.sids[s]
			if !ok {
				sid = st.addStream(s)
				added++
			}
			b.next[sid] = uint64(st.present[sid] + 1)
		}
	}
	b.heads = make(map[uint32]*chain.SignedHead, len(b.next))
	for sid := range b.next {
		b.heads[sid] = st.heads[sid]
	}
	return uint32(len(st.names) - added), added
}

func (b *batchTxn) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

func (b *batchTxn) set(k, v []byte) {
	if b.err == nil {
		b.err = b.txn.Set(k, v)
	}
}

// putPosting writes a tag index posting (posting.go).
func (b *batchTxn) putPosting(tag string, first pos, val []byte) { b.set(tagKey(tag, first), val) }

// putBlock writes a block of records (block.go).
func (b *batchTxn) putBlock(sid uint32, first uint64, val []byte) { b.set(blockKey(sid, first), val) }

// putEvent adds an event's record to its stream's block and the event to
// its tags' postings.
func (b *batchTxn) putEvent(p pos, r *record) {
	block, size := b.blocks.add(p, r, b.putBlock)
	b.x.grow(p.sid, eventBytes(size, r.tags))
	for _, t := range r.tags {
		b.postings.add(t, ref{p, block}, b.putPosting)
	}
}

// putStored adds a block a peer stored, of events at p's stream from p's
// offset on, as it is, and the events to their tags' postings.
func (b *batchTxn) putStored(p pos, data []byte, events []event.Event) error {
	var err error
	if b.recs, err = blockRecords(data, b.recs[:0]); err != nil || len(b.recs) != len(events) {
		return fmt.Errorf("ingest: a block of %d events at %d holds %d records: %w", len(events), p.offset, len(b.recs), err)
	}
	b.blocks.putRaw(p.sid, p.offset, data, b.putBlock)
	for j := range b.recs {
		q := pos{lamport: b.recs[j].lamport, sid: p.sid, offset: p.offset + uint64(j)}
		b.x.grow(q.sid, eventBytes(len(b.recs[j].rec), events[j].Tags))
		for _, t := range events[j].Tags {
			b.postings.add(t, ref{q, p.offset}, b.putPosting)
		}
	}
	return nil
}

// putRun writes a stream index run ending at its signed head.
func (b *batchTxn) putRun(sid uint32, firstOffset uint64, lamports []uint64, head *chain.SignedHead) {
	b.set(streamKey(sid, firstOffset), appendRunHead(appendRun(nil, lamports), head))
}

// ingest adds a verified range of stream sid, or returns the request's
// error if it does not continue the stream.
func (b *batchTxn) ingest(sid uint32, req *writeReq) error {
	in := req.ingest
	if got, want := in.events[0].Offset, b.next[sid]; got != want {
		return fmt.Errorf("ingest %s at offset %d, present is %d: %w", req.stream, got, int64(want)-1, chain.ErrStale)
	}
	lamports := make([]uint64, len(in.events))
	for j := range in.events {
		e := &in.events[j]
		if in.blocks == nil {
			b.putEvent(pos{lamport: e.Lamport, sid: sid, offset: e.Offset}, &record{timestamp: e.Timestamp, tags: e.Tags, appID: e.AppID, payload: e.Payload})
		}
		lamports[j] = e.Lamport
		b.observed = max(b.observed, e.Lamport)
	}
	for _, bl := range in.blocks {
		if err := b.putStored(pos{sid: sid, offset: bl.First}, bl.Data, in.events[bl.First-in.events[0].Offset:][:bl.Count]); err != nil {
			b.fail(err)
		}
	}
	head := in.head
	b.putRun(sid, b.next[sid], lamports, &head)
	b.next[sid] += uint64(len(in.events))
	b.heads[sid] = &head
	return nil
}

// publish adds req's drafts as new events of this node, with Lamport times
// from l on and timestamp ts, and returns their metas.
func (b *batchTxn) publish(req *writeReq, l uint64, ts int64) []event.Meta {
	st := b.w.st
	metas := make([]event.Meta, len(req.drafts))
	for j, d := range req.drafts {
		stream := req.stream
		if req.streams != nil {
			stream = req.streams[j]
		}
		sid := st.sids[stream]
		e := event.Event{Lamport: l, Stream: stream, Offset: b.next[sid], Timestamp: ts, Tags: req.tags[j], AppID: req.appID, Payload: d.Payload}
		b.putEvent(pos{lamport: l, sid: sid, offset: e.Offset}, &record{timestamp: ts, tags: e.Tags, appID: e.AppID, payload: e.Payload})
		b.local[sid] = append(b.local[sid], e)
		metas[j] = event.Meta{Lamport: l, Offset: e.Offset, Stream: stream, Timestamp: ts}
		l++
		b.next[sid]++
	}
	return metas
}

// signLocal ends each of this node's streams the batch wrote with one run
// and a head signed with the node key: the checkpoint peers verify the
// chain at.
func (b *batchTxn) signLocal() {
	for sid, evs := range b.local {
		prev := chain.Genesis
		if h := b.heads[sid]; h != nil {
			prev = h.Hash
		}
		last := evs[len(evs)-1]
		sh, err := chain.SignHead(b.w.key, chain.Head{Stream: last.Stream, Offset: last.Offset, Lamport: last.Lamport, Hash: chain.LinkAll(prev, evs)})
		if err != nil {
			b.fail(err)
		}
		lamports := make([]uint64, len(evs))
		for j := range evs {
			lamports[j] = evs[j].Lamport
		}
		b.putRun(sid, evs[0].Offset, lamports, &sh)
		b.heads[sid] = &sh
	}
}

// publishView makes the committed batch visible: present offsets, heads,
// counts and expiry state, and wakes whoever waits for a change.
func (b *batchTxn) publishView(batch []*writeReq, out []writeRes, published uint64) {
	st := b.w.st
	st.mu.Lock()
	defer st.mu.Unlock()
	for sid, n := range b.next {
		st.present[sid] = int64(n) - 1
		st.heads[sid] = b.heads[sid]
	}
	st.total += published
	for i, req := range batch {
		if req.ingest != nil && out[i].err == nil {
			st.total += uint64(len(req.ingest.events))
		}
	}
	b.x.apply(st)
	close(st.changed)
	st.changed = make(chan struct{})
}
