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

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// Routing and expiry in the store. Keys (besides those of keys.go):
//
//	f <sid:4>  -> floor:8 lamport:8 hash:32   first offset kept, and the chain
//	                                          head at floor-1 (absent: floor 0)
//	z <sid:4>  -> bytes:8                     bytes the stream's events occupy
//	y <sid:4>  -> maxEvents:8 maxBytes:8 maxAge:8   rule its origin announced
//	r <name>   -> n:8                         stream number of a named stream
//
// The writer goroutine writes f and z (pruning runs through it, see
// applyPrune), so they never race with a write of the same stream; y is
// written only by learnRetention, under pruneMu.
const (
	pfxFloor    = 'f'
	pfxSize     = 'z'
	pfxRule     = 'y'
	pfxStreamNo = 'r'
)

// PruneBatchEvents bounds the events one pruning batch expires: a stream
// with a maxEvents rule holds at most this many more while pruning catches
// up with writes.
const PruneBatchEvents = 1000

// Space reclamation: Badger drops deleted keys only when a compaction
// carries their tombstones down to the data, which with a steady write rate
// can take long; the tables of a stream pruned to 8 MB held 33 MB in a test.
// So every PruneInterval, if the tables hold more than reclaimFactor times
// the events kept plus reclaimSlack, the pruner merges them (Compact).
const (
	reclaimFactor = 1.25
	reclaimSlack  = 8 << 20
)

func floorKey(sid uint32) []byte { return binary.BigEndian.AppendUint32([]byte{pfxFloor}, sid) }
func sizeKey(sid uint32) []byte  { return binary.BigEndian.AppendUint32([]byte{pfxSize}, sid) }
func ruleKey(sid uint32) []byte  { return binary.BigEndian.AppendUint32([]byte{pfxRule}, sid) }
func streamNoKey(name string) []byte {
	return append([]byte{pfxStreamNo}, name...)
}

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
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(sizeKey(uint32(sid)), u64(uint64(n))) }); err != nil {
			return fmt.Errorf("open database: %w", err)
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

// assignStreamNumbers returns the stream number of every name, keeping the
// numbers stored in db and giving new names the next free numbers (in
// name order). Numbers are never reused, so a name keeps its number across
// restarts and rule changes.
func assignStreamNumbers(db *badger.DB, names []string) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := db.Update(func(txn *badger.Txn) error {
		var maxNo uint64
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxStreamNo}})
		for it.Rewind(); it.Valid(); it.Next() {
			var no uint64
			err := it.Item().Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("%w: stream number of %q", errBadRecord, it.Item().Key()[1:])
				}
				no = binary.BigEndian.Uint64(v)
				return nil
			})
			if err != nil {
				it.Close()
				return err
			}
			out[string(it.Item().Key()[1:])] = no
			maxNo = max(maxNo, no)
		}
		it.Close()
		for _, name := range slices.Sorted(slices.Values(names)) {
			if _, ok := out[name]; ok {
				continue
			}
			maxNo++
			out[name] = maxNo
			if err := txn.Set(streamNoKey(name), u64(maxNo)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open database: stream numbers: %w", err)
	}
	return out, nil
}

// routing is the node's compiled routing and retention settings.
type routing struct {
	router *expiry.Router
	ids    map[string]event.StreamID           // by stream name, "default" included
	rules  map[event.StreamID]expiry.Retention // own streams with a rule
}

// setupRouting validates cfg's routes and streams and numbers the streams.
func (n *Store) setupRouting(cfg Config) error {
	ec := expiry.Config{Routes: cfg.Routes, Streams: cfg.Streams}
	router, err := expiry.NewRouter(ec)
	if err != nil {
		return fmt.Errorf("store config: %w", err)
	}
	nums, err := assignStreamNumbers(n.st.db, ec.Names())
	if err != nil {
		return err
	}
	r := &routing{router: router, ids: map[string]event.StreamID{expiry.DefaultStream: n.stream0}, rules: map[event.StreamID]expiry.Retention{}}
	for name, no := range nums {
		r.ids[name] = event.NewStreamID(n.nodeID, no)
	}
	for name, rule := range cfg.Streams {
		if !rule.Forever() {
			r.rules[r.ids[name]] = rule
		}
	}
	n.routing = r
	for name, rule := range cfg.Streams {
		n.log.Info("stream", slog.String("name", name), slog.String("id", string(r.ids[name])), slog.String("retention", rule.String()))
	}
	return nil
}

// StreamIDs returns the ID of every named stream, "default" (stream 0)
// included.
func (n *Store) StreamIDs() map[string]event.StreamID { return maps.Clone(n.routing.ids) }

// route assigns req's drafts to streams by the routing rules.
func (n *Store) route(req *writeReq) {
	req.stream = n.stream0
	if n.routing.router.Empty() {
		return
	}
	now := n.w.now().UnixMicro()
	for i := range req.drafts {
		name := n.routing.router.Route(&aql.Subject{Tags: req.tags[i], AppID: req.appID, Timestamp: now, Local: true})
		s := n.routing.ids[name]
		if i == 0 {
			req.stream = s
			continue
		}
		if req.streams == nil && s != req.stream {
			req.streams = make([]event.StreamID, len(req.drafts))
			for j := range i {
				req.streams[j] = req.stream
			}
		}
		if req.streams != nil {
			req.streams[i] = s
		}
	}
}

// ruleOf returns the retention that applies to stream: the node's settings
// for its own streams, the origin's announced rule for others.
func (n *Store) ruleOf(stream event.StreamID, e streamExp) (expiry.Retention, bool) {
	if stream.Node() == n.nodeID {
		r, ok := n.routing.rules[stream]
		return r, ok
	}
	return e.rule, e.hasRule && !e.rule.Forever()
}

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

// tuneForExpiry makes Badger's compactions smaller and more frequent when
// a stream is bounded by size: fewer level-0 tables and smaller tables, so
// deletes reach the data sooner and a compaction rewrites less at once (a
// compaction writes its new tables before it deletes the old ones). In a
// 5-minute soak of a 50 MB stream at 1k events/s the data directory peaked
// at 1.9x the limit with Badger's defaults, at 1.3x with these. (A smaller
// base level, tried too, made it worse.)
func tuneForExpiry(opts badger.Options, cfg Config) badger.Options {
	for _, r := range cfg.Streams {
		if r.MaxBytes > 0 {
			return opts.WithNumLevelZeroTables(min(opts.NumLevelZeroTables, 3)).
				WithNumLevelZeroTablesStall(max(opts.NumLevelZeroTablesStall, 8)).
				WithBaseTableSize(min(opts.BaseTableSize, 512<<10))
		}
	}
	return opts
}

// expires reports whether some stream held has a retention rule.
func (n *Store) expires() bool {
	if len(n.routing.rules) > 0 {
		return true
	}
	for _, e := range n.st.exp.all() {
		if e.hasRule && !e.rule.Forever() {
			return true
		}
	}
	return false
}

// reclaim gives back the space of pruned events: it collects the value
// log (values of large events) and compacts the tables when they hold much
// more than the events kept (see reclaimFactor).
func (n *Store) reclaim(ctx context.Context, pruned int64) {
	if n.cfg.InMemory {
		return
	}
	for range 4 {
		if n.st.db.RunValueLogGC(0.5) != nil {
			break
		}
	}
	var tables, kept int64
	for _, t := range n.st.db.Tables() {
		tables += int64(t.OnDiskSize)
	}
	for _, e := range n.st.exp.all() {
		kept += e.bytes
	}
	if float64(tables) <= reclaimFactor*float64(kept)+reclaimSlack {
		return
	}
	start := time.Now()
	if err := n.Compact(ctx); err != nil {
		if ctx.Err() == nil {
			n.log.Warn("compacting after pruning", slog.Any("err", err))
		}
		return
	}
	after := int64(0)
	for _, t := range n.st.db.Tables() {
		after += int64(t.OnDiskSize)
	}
	n.log.Info("compacted the database after pruning", slog.Int64("prunedBytes", pruned), slog.Int64("tablesBefore", tables),
		slog.Int64("tablesAfter", after), slog.Duration("took", time.Since(start)))
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
	n.st.writeMu.Lock() // not during a drop of records, which refuses writes
	err = n.st.db.Update(func(txn *badger.Txn) error { return txn.Set(ruleKey(sid), encodeRule(rule)) })
	n.st.writeMu.Unlock()
	if err != nil {
		n.log.Warn("storing a stream's retention", slog.String("stream", string(stream)), slog.Any("err", err))
		return
	}
	n.st.exp.update(sid, func(e *streamExp) { e.rule, e.hasRule = rule, true })
	n.log.Info("stream retention announced by its origin", slog.String("stream", string(stream)), slog.String("retention", rule.String()))
	n.kickPruner()
}

// kickPruner wakes the pruner if it waits.
func (n *Store) kickPruner() {
	select {
	case n.pruneKick <- struct{}{}:
	default:
	}
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
		if lo, has := lower[s]; floor == 0 || (has && lo+1 >= floor) {
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

// Compact reclaims the space of deleted keys (expired events' index
// entries, replaced bookkeeping) now, instead of as Badger's compactions get
// to it: it merges the database's tables down to one level, which drops
// them, and collects the value log. Expired records are not its business:
// the pruner drops them in ranges (drop.go). It blocks writes to the tables
// while it runs; the node calls it by itself only in small doses (see
// reclaim).
func (n *Store) Compact(ctx context.Context) error {
	done, err := n.enter()
	if err != nil {
		return err
	}
	defer done()
	n.compactMu.Lock()
	defer n.compactMu.Unlock()
	if n.cfg.InMemory {
		return nil
	}
	if err := n.st.db.Flatten(max(1, n.cfg.Storage.NumCompactors)); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	for ctx.Err() == nil && n.st.db.RunValueLogGC(0.5) == nil {
	}
	return ctx.Err()
}
