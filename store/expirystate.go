package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// eventBytes is what one event counts towards its stream's bytes: its
// record with a block key and, for each tag, a tag index key. Blocks and
// postings share a key among many events (block.go, posting.go), so this
// errs high, and maxSize keeps a stream's disk use below the limit rather
// than above.
func eventBytes(valueLen int, tags []string) int64 {
	n := int64(blockKeyLen + valueLen)
	for _, t := range tags {
		n += int64(1 + len(t) + 1 + posKeyLen)
	}
	return n
}

// streamExp is a stream's expiry state.
type streamExp struct {
	floor     uint64      // first offset kept
	floorHead *chain.Head // chain head at floor-1; nil when floor is 0
	bytes     int64
	dropped   uint64           // records below it are dropped (drop.go)
	rule      expiry.Retention // the origin's rule, for other nodes' streams
	hasRule   bool
}

// expiryState holds every stream's expiry state, by sid.
type expiryState struct {
	mu sync.RWMutex
	m  map[uint32]streamExp
}

func (e *expiryState) get(sid uint32) streamExp {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.m[sid]
}

func (e *expiryState) all() map[uint32]streamExp {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return maps.Clone(e.m)
}

func (e *expiryState) update(sid uint32, f func(*streamExp)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[uint32]streamExp{}
	}
	s := e.m[sid]
	f(&s)
	e.m[sid] = s
}

func encodeFloor(floor uint64, h *chain.Head) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 48), floor)
	b = binary.BigEndian.AppendUint64(b, h.Lamport)
	return append(b, h.Hash[:]...)
}

func decodeFloor(stream event.StreamID, v []byte) (uint64, *chain.Head, error) {
	if len(v) != 48 {
		return 0, nil, fmt.Errorf("%w: floor record of %d bytes", errBadRecord, len(v))
	}
	floor := binary.BigEndian.Uint64(v)
	if floor == 0 {
		return 0, nil, nil
	}
	h := &chain.Head{Stream: stream, Offset: floor - 1, Lamport: binary.BigEndian.Uint64(v[8:])}
	copy(h.Hash[:], v[16:])
	return floor, h, nil
}

// readFloor returns sid's floor and the head below it as of txn.
func readFloor(txn *badger.Txn, stream event.StreamID, sid uint32) (uint64, *chain.Head, error) {
	item, err := txn.Get(floorKey(sid))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	var floor uint64
	var h *chain.Head
	err = item.Value(func(v []byte) error {
		floor, h, err = decodeFloor(stream, v)
		return err
	})
	return floor, h, err
}

func encodeRule(r expiry.Retention) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 24), r.MaxEvents)
	b = binary.BigEndian.AppendUint64(b, uint64(r.MaxBytes))
	return binary.BigEndian.AppendUint64(b, uint64(r.MaxAge))
}

func decodeRule(v []byte) (expiry.Retention, error) {
	if len(v) != 24 {
		return expiry.Retention{}, fmt.Errorf("%w: retention record of %d bytes", errBadRecord, len(v))
	}
	r := expiry.Retention{MaxEvents: binary.BigEndian.Uint64(v), MaxBytes: int64(binary.BigEndian.Uint64(v[8:])), MaxAge: time.Duration(binary.BigEndian.Uint64(v[16:]))}
	return r, r.Validate()
}

// loadExpiry reads every stream's floor, bytes and learned rule; the store's
// names and present offsets are loaded. Streams written before expiry
// existed have no byte count yet: it is computed once from their records.
func (s *engine) loadExpiry() error {
	s.exp.m = map[uint32]streamExp{}
	err := s.db.View(func(txn *badger.Txn) error {
		for sid := 1; sid < len(s.names); sid++ {
			var e streamExp
			var err error
			if e.floor, e.floorHead, err = readFloor(txn, s.names[sid], uint32(sid)); err != nil {
				return err
			}
			if n, err := readU64(txn, sizeKey(uint32(sid))); err != nil {
				return err
			} else {
				e.bytes = int64(n)
			}
			item, err := txn.Get(ruleKey(uint32(sid)))
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
			case err != nil:
				return err
			default:
				if err := item.Value(func(v []byte) error {
					e.rule, err = decodeRule(v)
					e.hasRule = err == nil
					return err
				}); err != nil {
					return err
				}
			}
			if e.floor > 0 {
				if e.dropped, err = firstStored(txn, uint32(sid), e.floor); err != nil {
					return err
				}
			}
			s.exp.m[uint32(sid)] = e
			s.total -= min(e.floor, uint64(s.present[sid]+1))
			if e.floorHead != nil && s.present[sid] < int64(e.floor)-1 {
				// Every event expired with its runs: the floor head is
				// the stream's head, which new events chain from.
				s.present[sid] = int64(e.floor) - 1
				s.heads[sid] = &chain.SignedHead{Head: *e.floorHead}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("open database: expiry state: %w", err)
	}
	for sid := 1; sid < len(s.names); sid++ {
		e := s.exp.m[uint32(sid)]
		if e.bytes != 0 || s.present[sid] < int64(e.floor) {
			continue
		}
		n, err := s.countBytes(uint32(sid), e.floor)
		if err != nil {
			return fmt.Errorf("open database: counting bytes of %s: %w", s.names[sid], err)
		}
		if s.readOnly == nil { // read-only: counted again at the next open
			if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(sizeKey(uint32(sid)), u64(uint64(n))) }); err != nil {
				return fmt.Errorf("open database: %w", err)
			}
		}
		e.bytes = n
		s.exp.m[uint32(sid)] = e
	}
	return nil
}

// countBytes sums eventBytes over sid's events from floor on.
func (s *engine) countBytes(sid uint32, floor uint64) (int64, error) {
	var n int64
	err := s.db.View(func(txn *badger.Txn) error {
		return eachRecord(txn, sid, floor, uint64(s.present[sid]+1), false, func(_ pos, v blockRec) (bool, error) {
			rec, _, _, err := decodeHeader(v)
			n += eventBytes(len(v.rec), rec.tags)
			return err == nil, err
		})
	})
	return n, err
}

// skipTo moves a replica's copy of a stream up to floor: its peers expired
// everything up to floor.Offset. Events held below are pruned (only if the
// origin announced a retention rule for the stream: a stream without one
// never expires, so a peer claiming a floor for it is wrong); the stream's
// present offset becomes floor.Offset, verified against the chain later.
func (n *Store) skipTo(ctx context.Context, floor chain.Head) error {
	n.pruneMu.Lock()
	defer n.pruneMu.Unlock()
	v := n.st.snapshot()
	sid, ok := v.sids[floor.Stream]
	if ok {
		e := n.st.exp.get(sid)
		if v.present[sid] >= int64(floor.Offset) || e.floor > floor.Offset {
			return nil // holds as much already
		}
		if v.present[sid] >= int64(e.floor) {
			if _, ok := n.ruleOf(floor.Stream, e); !ok {
				return fmt.Errorf("skip %s to %d: no retention rule known for it, keeping its events: %w", floor.Stream, floor.Offset, chain.ErrStale)
			}
			if err := n.pruneTo(ctx, sid, floor.Stream, uint64(v.present[sid]+1)); err != nil {
				return fmt.Errorf("skip %s: %w", floor.Stream, err)
			}
		}
	}
	from := uint64(0)
	if ok {
		from = n.st.exp.get(sid).floor
	}
	// The writer sets op.sid (it interns a stream never held before).
	op := &pruneOp{from: from, to: floor.Offset + 1, floorHead: floor, skip: true}
	req := &writeReq{stream: floor.Stream, prune: op, size: 256, count: 4}
	if _, err := n.w.submit(ctx, req); err != nil {
		return fmt.Errorf("skip %s to %d: %w", floor.Stream, floor.Offset, err)
	}
	n.log.Info("stream expired on peers below what is held here; continuing from their floor", slog.String("stream", string(floor.Stream)), slog.Uint64("floor", floor.Offset+1))
	return nil
}

// learnRetention records the rule a stream's origin announced. The pruner
// applies it from its next pass.
func (n *Store) learnRetention(stream event.StreamID, rule expiry.Retention) {
	if stream.Node() == n.nodeID || rule.Validate() != nil {
		return
	}
	v := n.st.snapshot()
	sid, ok := v.sids[stream]
	if !ok {
		return // learnt again with the next announce, once events arrive
	}
	e := n.st.exp.get(sid)
	if e.hasRule && e.rule == rule {
		return
	}
	n.pruneMu.Lock()
	defer n.pruneMu.Unlock()
	done, err := n.enter()
	if err != nil {
		return
	}
	defer done()
	if n.st.readOnly == nil { // read-only: kept in memory, learnt again after a restart
		n.st.writeMu.Lock() // not during a drop of records, which refuses writes
		err = n.st.db.Update(func(txn *badger.Txn) error { return txn.Set(ruleKey(sid), encodeRule(rule)) })
		n.st.writeMu.Unlock()
	}
	if err != nil {
		n.log.Warn("storing a stream's retention", slog.String("stream", string(stream)), slog.Any("err", err))
		return
	}
	n.st.exp.update(sid, func(e *streamExp) { e.rule, e.hasRule = rule, true })
	n.log.Info("stream retention announced by its origin", slog.String("stream", string(stream)), slog.String("retention", rule.String()))
	n.kickPruner()
}

// StreamStats returns each stream's floor, count and bytes.
func (n *Store) StreamStats() map[event.StreamID]event.StreamStats {
	v := n.st.snapshot()
	exps := n.st.exp.all()
	out := make(map[event.StreamID]event.StreamStats, len(v.names))
	for sid := 1; sid < len(v.names); sid++ {
		if v.present[sid] < 0 && exps[uint32(sid)].floor == 0 {
			continue
		}
		e := exps[uint32(sid)]
		s := event.StreamStats{Floor: e.floor, Bytes: e.bytes}
		if held := v.present[sid] + 1 - int64(e.floor); held > 0 {
			s.Count = uint64(held)
		}
		if rule, ok := n.ruleOf(v.names[sid], e); ok {
			s.Retention = rule.String()
		}
		out[v.names[sid]] = s
	}
	return out
}

// expiryOf returns, for replication's gossip, every held stream's floor and
// the retention rules of this node's own streams.
func (n *Store) expiryOf() []expiry.StreamExpiry {
	v := n.st.snapshot()
	exps := n.st.exp.all()
	var out []expiry.StreamExpiry
	for sid := 1; sid < len(v.names); sid++ {
		e := exps[uint32(sid)]
		se := expiry.StreamExpiry{Stream: v.names[sid], Floor: e.floor}
		if v.names[sid].Node() == n.nodeID {
			se.Retention, se.HasRetention = n.routing.rules[v.names[sid]], true
		}
		if se.Floor == 0 && !se.HasRetention {
			continue
		}
		out = append(out, se)
	}
	return out
}

// clampToFloors raises lower bounds below a stream's floor (as of txn) to
// the floor, for the streams of upper. It returns the bounds to read with
// and, if events the reader asked for expired, a diagnostic naming them.
func (n *Store) clampToFloors(txn *badger.Txn, v view, lower, upper event.OffsetMap) (event.OffsetMap, *event.Item, error) {
	var msgs []string
	out := lower
	for s := range upper {
		sid, ok := v.sids[s]
		if !ok {
			continue
		}
		floor, _, err := readFloor(txn, s, sid)
		if err != nil {
			return nil, nil, err
		}
		// lo >= floor-1, not lo+1 >= floor: lo+1 wraps for a bound of
		// 2^64-1, which must read nothing, not the stream from its floor.
		if lo, has := lower[s]; floor == 0 || (has && lo >= floor-1) {
			continue
		}
		if len(msgs) == 0 {
			out = lower.Clone()
			if out == nil {
				out = event.OffsetMap{}
			}
		}
		out[s] = floor - 1
		msgs = append(msgs, fmt.Sprintf("%s below offset %d", s, floor))
	}
	if len(msgs) == 0 {
		return lower, nil, nil
	}
	slices.Sort(msgs)
	msg := "events expired (retention): " + msgs[0]
	for _, m := range msgs[1:] {
		msg += ", " + m
	}
	return out, &event.Item{Kind: event.KindDiagnostic, Severity: "warning", Message: msg + "; reading from the floor"}, nil
}
