package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// PruneBatchEvents bounds the events one pruning batch expires: a stream
// with a maxEvents rule holds at most this many more while pruning catches
// up with writes.
const PruneBatchEvents = 1000

// pruneOp is one pruning batch, applied by the writer: it expires the
// offsets [from, to) of sid (from must be the floor), or with skip, moves
// an empty stream's present offset up to to-1 (a replica whose peers hold
// nothing below their floor).
type pruneOp struct {
	sid       uint32
	from, to  uint64
	dels      [][]byte   // tag index postings and runs that start in [from, to)
	puts      []kvOp     // the run and the postings holding to and later, rewritten to start at to or later
	floorHead chain.Head // at to-1
	bytes     int64
	skip      bool
}

// expBatch collects one write batch's effect on streams' bytes and floors.
type expBatch struct {
	grown  map[uint32]int64
	prunes []*pruneOp
}

func (x *expBatch) grow(sid uint32, n int64) {
	if x.grown == nil {
		x.grown = map[uint32]int64{}
	}
	x.grown[sid] += n
}

// persist writes the new byte counts; set is the writer's setter.
func (x *expBatch) persist(st *engine, set func(k, v []byte)) {
	for sid, d := range x.grown {
		for _, op := range x.prunes {
			if op.sid == sid {
				d -= op.bytes
			}
		}
		set(sizeKey(sid), u64(uint64(max(st.exp.get(sid).bytes+d, 0))))
	}
}

// reqStreams returns the streams req writes.
func reqStreams(req *writeReq) []event.StreamID {
	out := []event.StreamID{req.stream}
	for _, s := range req.streams {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// apply publishes the committed batch in memory; the caller holds st.mu.
func (x *expBatch) apply(st *engine) {
	for sid, d := range x.grown {
		st.exp.update(sid, func(e *streamExp) { e.bytes += d })
	}
	for _, op := range x.prunes {
		if !op.skip {
			st.total -= min(st.total, op.to-op.from)
		}
		h := op.floorHead
		st.exp.update(op.sid, func(e *streamExp) {
			e.floor, e.floorHead = op.to, &h
			e.bytes = max(e.bytes-op.bytes, 0)
		})
	}
}

// applyPrune applies op in the writer's transaction. next and heads are the
// writer's view of the batch's streams. A stale op (the floor moved, or it
// reaches beyond what is stored) returns reqErr and writes nothing; txnErr
// fails the whole transaction.
func (w *writer) applyPrune(txn *badger.Txn, op *pruneOp, x *expBatch, next map[uint32]uint64, heads map[uint32]*chain.SignedHead) (reqErr, txnErr error) {
	cur := w.st.exp.get(op.sid)
	for _, p := range x.prunes {
		if p.sid == op.sid {
			cur.floor = p.to
			cur.bytes -= p.bytes
		}
	}
	switch {
	case op.from != cur.floor:
		return fmt.Errorf("prune stream %d from %d: the floor is %d: %w", op.sid, op.from, cur.floor, chain.ErrStale), nil
	case op.to <= op.from:
		return fmt.Errorf("prune stream %d: empty range [%d, %d)", op.sid, op.from, op.to), nil
	case op.skip && next[op.sid] != op.from:
		return fmt.Errorf("skip stream %d to %d: it holds events up to %d: %w", op.sid, op.to, int64(next[op.sid])-1, chain.ErrStale), nil
	case !op.skip && op.to > next[op.sid]:
		return fmt.Errorf("prune stream %d up to %d: it holds events up to %d: %w", op.sid, op.to, int64(next[op.sid])-1, chain.ErrStale), nil
	}
	for _, k := range op.dels {
		if err := txn.Delete(k); err != nil {
			return nil, err
		}
	}
	for _, kv := range op.puts {
		if err := txn.Set(kv.key, kv.val); err != nil {
			return nil, err
		}
	}
	if err := txn.Set(floorKey(op.sid), encodeFloor(op.to, &op.floorHead)); err != nil {
		return nil, err
	}
	if err := txn.Set(sizeKey(op.sid), u64(uint64(max(cur.bytes-op.bytes, 0)))); err != nil {
		return nil, err
	}
	if op.skip {
		next[op.sid] = op.to
		heads[op.sid] = &chain.SignedHead{Head: op.floorHead}
	}
	x.prunes = append(x.prunes, op)
	return nil, nil
}

// writePrunesOnly writes the pruning requests of a batch refused for lack
// of disk space (pruning is what frees it); the others get spaceErr.
func (w *writer) writePrunesOnly(batch []*writeReq, spaceErr error) ([]writeRes, error) {
	var prunes []*writeReq
	var idx []int
	for i, req := range batch {
		if req.prune != nil {
			prunes = append(prunes, req)
			idx = append(idx, i)
		}
	}
	if len(prunes) == 0 {
		return nil, spaceErr
	}
	w.skipSpaceCheck = true
	res, err := w.write(prunes)
	w.skipSpaceCheck = false
	if err != nil {
		return nil, err
	}
	out := make([]writeRes, len(batch))
	for i := range out {
		out[i].err = spaceErr
	}
	for j, i := range idx {
		out[i] = res[j]
	}
	return out, nil
}

// pruner expires events of streams with a retention rule: after writes, in
// batches of at most PruneBatchEvents per stream, and every PruneInterval
// (for maxAge). It stops when the node closes.
func (n *Store) pruner() {
	defer close(n.prunerDone)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-n.closing
		cancel()
	}()
	defer cancel()
	tick := time.NewTicker(n.cfg.PruneInterval)
	defer tick.Stop()
	var reclaimed time.Time
	var pruned int64
	first := true
	for {
		changed := n.st.snapshot().changed
		more, bytes, err := n.prunePass(ctx)
		pruned += bytes
		if err != nil && ctx.Err() == nil {
			n.log.Warn("pruning", slog.Any("err", err))
		}
		// Once anything expired, check every PruneInterval whether the
		// space of expired events is back (cheap unless it is not), and
		// drop the expired records at the latest then.
		switch {
		case first:
			n.dropExpired(true) // records the last run left expired
			first = false
		case pruned > 0 && !more && time.Since(reclaimed) >= n.cfg.PruneInterval:
			n.dropExpired(true)
			n.reclaim(ctx, pruned)
			pruned, reclaimed = 1, time.Now()
		default:
			n.dropExpired(false)
		}
		if more && err == nil {
			select {
			case <-n.closing:
				return
			default:
				continue
			}
		}
		if !n.expires() {
			changed = nil // nothing can expire: no need to wake on writes
		}
		select {
		case <-n.closing:
			return
		case <-changed:
		case <-tick.C:
		case <-n.pruneKick:
		}
	}
}

// prunePass runs one pruning batch on every stream whose rule expires
// something. more reports that some stream has more to expire.
func (n *Store) prunePass(ctx context.Context) (more bool, bytes int64, err error) {
	n.pruneMu.Lock()
	defer n.pruneMu.Unlock()
	v := n.st.snapshot()
	exps := n.st.exp.all()
	now := n.w.now()
	for sid := 1; sid < len(v.names); sid++ {
		e := exps[uint32(sid)]
		rule, ok := n.ruleOf(v.names[sid], e)
		if !ok || v.present[sid] < int64(e.floor) {
			continue
		}
		st := expiry.State{Floor: e.floor, Count: uint64(v.present[sid]+1) - e.floor, Bytes: e.bytes}
		op, d, perr := n.planPrune(uint32(sid), v.names[sid], st, e.floorHead, rule, now)
		if perr == nil && op != nil {
			perr = n.submitPrune(ctx, op)
		}
		if perr != nil {
			if errors.Is(perr, chain.ErrStale) {
				continue // the stream moved meanwhile; the next pass sees it
			}
			return more, bytes, fmt.Errorf("stream %s: %w", v.names[sid], perr)
		}
		if op != nil {
			bytes += op.bytes
		}
		more = more || d.More
	}
	return more, bytes, nil
}

// needsRead tells, without reading events, whether rule may expire any of st.
func needsRead(rule expiry.Retention, st expiry.State) bool {
	return (rule.MaxEvents > 0 && st.Count > rule.MaxEvents) || (rule.MaxBytes > 0 && st.Bytes > rule.MaxBytes) || rule.MaxAge > 0
}

// planPrune reads the oldest events of a stream, asks the policy which
// expire and builds the batch that removes them (nil if none).
func (n *Store) planPrune(sid uint32, stream event.StreamID, st expiry.State, floorHead *chain.Head, rule expiry.Retention, now time.Time) (*pruneOp, expiry.Decision, error) {
	if !needsRead(rule, st) {
		return nil, expiry.Decision{Floor: st.Floor}, nil
	}
	done, err := n.enter()
	if err != nil {
		return nil, expiry.Decision{}, err
	}
	defer done()
	txn := n.st.db.NewTransaction(false)
	defer txn.Discard()
	// A batch's deletes must fit one transaction, next to other writes.
	budget := n.w.maxCount / 4
	var sums []expiry.Summary
	var entries int64
	err = eachRecord(txn, sid, st.Floor, st.Floor+min(st.Count, PruneBatchEvents), false, func(p pos, v blockRec) (bool, error) {
		r, _, _, err := decodeHeader(v)
		if err != nil {
			return false, err
		}
		if entries += int64(1 + len(r.tags)); entries > budget && len(sums) > 0 {
			return false, nil
		}
		sums = append(sums, expiry.Summary{Offset: p.offset, Size: eventBytes(len(v.rec), r.tags), Timestamp: r.timestamp})
		// For age, stop reading at the first event that stays.
		if rule.MaxAge > 0 && rule.MaxEvents == 0 && rule.MaxBytes == 0 && r.timestamp >= now.Add(-rule.MaxAge).UnixMicro() {
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, expiry.Decision{}, err
	}
	d := rule.Expire(st, sums, now)
	if d.Expired == 0 {
		return nil, d, nil
	}
	op, err := n.buildPrune(txn, sid, stream, st.Floor, d.Floor, floorHead)
	return op, d, err
}

// buildPrune collects the keys that expiring [from, to) of sid deletes and
// the chain head at to-1, chained from floorHead over the expired events.
func (n *Store) buildPrune(txn *badger.Txn, sid uint32, stream event.StreamID, from, to uint64, floorHead *chain.Head) (*pruneOp, error) {
	op := &pruneOp{sid: sid, from: from, to: to}
	hash := chain.Genesis
	if floorHead != nil {
		hash = floorHead.Hash
	}
	var lastLamport uint64
	// posted[t] is the last offset of tag t's postings handled so far: the
	// first event after it with the tag starts one.
	posted := map[string]uint64{}
	err := eachRecord(txn, sid, from, to, false, func(p pos, v blockRec) (bool, error) {
		r, err := decodeRecord(v)
		if err != nil {
			return false, fmt.Errorf("event %d/%d: %w", sid, p.offset, err)
		}
		// The record itself stays until a drop (drop.go).
		for _, t := range r.tags {
			if last, ok := posted[t]; ok && p.offset <= last {
				continue
			}
			last, err := n.prunePosting(txn, op, t, p)
			if err != nil {
				return false, err
			}
			posted[t] = last
		}
		op.bytes += eventBytes(len(v.rec), r.tags)
		ev := event.Event{Stream: stream, Offset: p.offset, Lamport: p.lamport, Timestamp: r.timestamp, Tags: r.tags, AppID: r.appID, Payload: r.payload}
		hash = chain.Link(hash, &ev)
		lastLamport = p.lamport
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for r, err := range runsFrom(txn, sid, from) {
		if err != nil {
			return nil, err
		}
		if r.first >= to {
			break
		}
		op.dels = append(op.dels, streamKey(sid, r.first))
		if r.last() == to-1 && len(r.head) > 0 {
			// A signed head sits here: the chain must agree with it.
			if h, err := decodeRunHead(stream, r, r.head); err == nil && h != nil && h.Hash != hash {
				return nil, fmt.Errorf("stream %s: expired events do not chain to the head at %d", stream, to-1)
			}
		}
		if r.last() >= to {
			val := appendRunHead(appendRun(nil, r.lamports[to-r.first:]), nil)
			op.puts = append(op.puts, kvOp{key: streamKey(sid, to), val: append(val, r.head...)})
			break
		}
	}
	op.floorHead = chain.Head{Stream: stream, Offset: to - 1, Lamport: lastLamport, Hash: hash}
	return op, nil
}

// prunePosting deletes the posting of tag that starts at p, the first
// event in op's range with the tag (postings begin at or after the floor:
// pruning rewrites one that reaches past it). What it holds from op.to on
// is written again as a posting starting there. It returns the posting's
// last offset. A missing posting, which only a damaged index has, is
// logged and skipped: expiring the rest matters more.
func (n *Store) prunePosting(txn *badger.Txn, op *pruneOp, tag string, p pos) (last uint64, err error) {
	key := tagKey(tag, p)
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		n.log.Warn("expiring events: the tag index has no posting starting at an event with the tag", slog.String("tag", tag), slog.Uint64("sid", uint64(p.sid)), slog.Uint64("offset", p.offset))
		return p.offset, nil
	}
	if err != nil {
		return 0, err
	}
	op.dels = append(op.dels, key)
	var kept []byte // the posting from keptFirst on
	var keptFirst, prev pos
	err = item.Value(func(v []byte) error {
		return eachPosted(p, v, func(q ref) bool {
			switch {
			case q.offset < op.to:
			case kept == nil:
				keptFirst, kept = q.pos, startPosted(nil, q)
			default:
				kept = appendPosted(kept, prev, q)
			}
			prev, last = q.pos, q.offset
			return true
		})
	})
	if err != nil {
		return 0, fmt.Errorf("tag %q at %d/%d: %w", tag, p.sid, p.offset, err)
	}
	if kept != nil {
		op.puts = append(op.puts, kvOp{key: tagKey(tag, keptFirst), val: kept})
	}
	return last, nil
}

// submitPrune hands op to the writer and waits for it.
func (n *Store) submitPrune(ctx context.Context, op *pruneOp) error {
	entries := int64(len(op.dels) + len(op.puts) + 4)
	size := int64(128)
	for _, k := range op.dels {
		size += int64(len(k)) + entryOverhead
	}
	for _, kv := range op.puts {
		size += int64(len(kv.key)+len(kv.val)) + entryOverhead
	}
	req := &writeReq{stream: n.st.snapshot().names[op.sid], prune: op, size: size, count: entries}
	if _, err := n.w.submit(ctx, req); err != nil {
		return err
	}
	n.undropped.Add(op.bytes)
	return nil
}

// pruneTo expires stream's events below to (bounded batches), whatever its
// rule: for a replica that learns its peers hold nothing below to.
func (n *Store) pruneTo(ctx context.Context, sid uint32, stream event.StreamID, to uint64) error {
	for {
		e := n.st.exp.get(sid)
		v := n.st.snapshot()
		end := min(to, uint64(v.present[sid]+1))
		if e.floor >= end {
			return nil
		}
		op, err := n.pruneRange(sid, stream, e.floor, min(end, e.floor+PruneBatchEvents), e.floorHead)
		if err != nil {
			return err
		}
		if err := n.submitPrune(ctx, op); err != nil {
			return err
		}
	}
}

func (n *Store) pruneRange(sid uint32, stream event.StreamID, from, to uint64, floorHead *chain.Head) (*pruneOp, error) {
	done, err := n.enter()
	if err != nil {
		return nil, err
	}
	defer done()
	txn := n.st.db.NewTransaction(false)
	defer txn.Discard()
	return n.buildPrune(txn, sid, stream, from, to, floorHead)
}

// kickPruner wakes the pruner if it waits.
func (n *Store) kickPruner() {
	select {
	case n.pruneKick <- struct{}{}:
	default:
	}
}
