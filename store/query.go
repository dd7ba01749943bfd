package store

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// bound is the range (lo, hi] of offsets of one stream a read covers.
type bound struct {
	on     bool
	lo, hi int64
}

// readPlan is a resolved read: which offsets of which streams, and the
// Lamport range that holds them.
type readPlan struct {
	v          view
	bounds     []bound // by sid
	upper      event.OffsetMap
	minL, maxL uint64
	empty      bool
	local      []bool      // by sid: the stream is this node's own
	diag       *event.Item // names events asked for that expired, if any
}

// resolve checks bounds against what is present and turns them into a plan.
// A nil upper means everything present.
func (n *Store) resolve(txn *badger.Txn, v view, lower, upper event.OffsetMap) (*readPlan, error) {
	for s := range lower {
		if !s.Valid() {
			return nil, fmt.Errorf("%w: lowerBound: invalid stream id %q", event.ErrInvalid, s)
		}
	}
	if upper == nil {
		upper = v.offsets()
	} else {
		for s, hi := range upper {
			if !s.Valid() {
				return nil, fmt.Errorf("%w: upperBound: invalid stream id %q", event.ErrInvalid, s)
			}
			sid, ok := v.sids[s]
			// Compared as unsigned: a bound of 2^63 or more is beyond
			// every stream, not a negative offset.
			if !ok || v.present[sid] < 0 || uint64(v.present[sid]) < hi {
				have := "no events"
				if ok && v.present[sid] >= 0 {
					have = fmt.Sprintf("up to offset %d", v.present[sid])
				}
				return nil, fmt.Errorf("%w: upperBound: stream %s offset %d is not present here (this node holds %s)", event.ErrInvalid, s, hi, have)
			}
		}
	}
	// Below a stream's floor, events expired: read from the floor.
	lower, diag, err := n.clampToFloors(txn, v, lower, upper)
	if err != nil {
		return nil, err
	}
	pl := &readPlan{v: v, bounds: make([]bound, len(v.names)), upper: upper, local: make([]bool, len(v.names)), minL: ^uint64(0), empty: true, diag: diag}
	for sid, name := range v.names {
		pl.local[sid] = sid > 0 && name.Node() == n.nodeID
	}
	for s, hi := range upper {
		sid := v.sids[s]
		lo := int64(-1)
		if l, ok := lower[s]; ok {
			if l >= hi {
				continue
			}
			lo = int64(l)
		}
		pl.bounds[sid] = bound{on: true, lo: lo, hi: int64(hi)}
		first, err := lamportAt(txn, sid, uint64(lo+1))
		if err != nil {
			return nil, err
		}
		last, err := lamportAt(txn, sid, hi)
		if err != nil {
			return nil, err
		}
		pl.minL, pl.maxL, pl.empty = min(pl.minL, first), max(pl.maxL, last), false
	}
	return pl, nil
}

// events returns how many events the plan's offset ranges hold.
func (pl *readPlan) events() uint64 {
	var n uint64
	for _, b := range pl.bounds {
		if b.on {
			n += uint64(b.hi - b.lo)
		}
	}
	return n
}

func (pl *readPlan) admits(p pos) bool {
	if int(p.sid) >= len(pl.bounds) {
		return false
	}
	b := pl.bounds[p.sid]
	return b.on && int64(p.offset) > b.lo && int64(p.offset) <= b.hi
}

// Query answers req: the selected events within bounds, in the requested
// order, then one offsets item with the upper bound used.
func (n *Store) Query(ctx context.Context, req event.QueryRequest) iter.Seq2[event.Item, error] {
	return func(yield func(event.Item, error) bool) {
		done, err := n.enter()
		if err != nil {
			yield(event.Item{}, err)
			return
		}
		defer done()
		// The view first, then the transaction: the writer commits before
		// it moves the view, so the transaction sees every event the view
		// says is present. The other way round, a commit landing between
		// them made the view name an event the transaction cannot read.
		v := n.st.snapshot()
		txn, end := n.st.beginRead()
		defer end()
		pl, err := n.resolve(txn, v, req.Lower, req.Upper)
		if err != nil {
			yield(event.Item{}, fmt.Errorf("query: %w", err))
			return
		}
		if pl.diag != nil && !yield(*pl.diag, nil) {
			return
		}
		for ev, err := range n.read(ctx, txn, pl, req.Query, req.Order) {
			if err != nil {
				yield(event.Item{}, fmt.Errorf("query: %w", err))
				return
			}
			if !yield(event.Item{Kind: event.KindEvent, Event: ev}, nil) {
				return
			}
		}
		yield(event.Item{Kind: event.KindOffsets, Offsets: pl.upper}, nil)
	}
}

// read yields the events of pl selected by q in the given order.
func (n *Store) read(ctx context.Context, txn *badger.Txn, pl *readPlan, q *aql.Query, order event.Order) iter.Seq2[*event.Event, error] {
	if pl.empty {
		return func(func(*event.Event, error) bool) {}
	}
	if q == nil {
		q = allEvents
	}
	if order == event.StreamAsc {
		return n.readStreams(ctx, txn, pl, q)
	}
	desc := order == event.Desc
	if tags, ok := n.indexPlan(txn, pl, q.Where); ok {
		return sortRuns(n.readIndex(ctx, txn, pl, q, tags, desc), desc)
	}
	return n.scan(ctx, txn, pl, q, desc)
}

var allEvents = &aql.Query{Where: aql.AllEvents{}, Source: "FROM allEvents"}

// checkStop reports a cancelled context or a closing node to the read loops.
func (n *Store) checkStop(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-n.closing:
		return fmt.Errorf("%w: node is closing", event.ErrUnavailable)
	default:
		return nil
	}
}

// scan merges the plan's streams, each read in offset order (reversed
// with desc), into the (lamport, stream) order.
func (n *Store) scan(ctx context.Context, txn *badger.Txn, pl *readPlan, q *aql.Query, desc bool) iter.Seq2[*event.Event, error] {
	var inputs []iter.Seq2[*event.Event, error]
	for sid, b := range pl.bounds {
		if b.on {
			inputs = append(inputs, n.readStream(ctx, txn, pl, uint32(sid), q, desc))
		}
	}
	if len(inputs) == 1 {
		return inputs[0]
	}
	return lamport.Merge((*event.Event).Key, desc, inputs...)
}

// decode turns a stored record into an Event if q selects it, else nil.
func (pl *readPlan) decode(p pos, v blockRec, q *aql.Query) (*event.Event, error) {
	r, flags, rest, err := decodeHeader(v)
	if err != nil {
		return nil, fmt.Errorf("event %d/%d: %w", p.sid, p.offset, err)
	}
	if !q.Match(&aql.Subject{Tags: r.tags, AppID: r.appID, Timestamp: r.timestamp, Local: pl.local[p.sid]}) {
		return nil, nil
	}
	payload, err := decodePayload(flags, rest)
	if err != nil {
		return nil, fmt.Errorf("event %d/%d: %w", p.sid, p.offset, err)
	}
	return &event.Event{
		Lamport:   p.lamport,
		Stream:    pl.v.names[p.sid],
		Offset:    p.offset,
		Timestamp: r.timestamp,
		Tags:      r.tags,
		AppID:     r.appID,
		Payload:   payload,
	}, nil
}

// indexPlan decides whether the tag index should answer where: it returns
// the tags whose index entries, merged, cover every event where selects, if
// they are few enough (an eighth of the events in range) to beat a scan.
// A range of fewer than eight events (a live subscription's round) is
// scanned without counting: the count alone would read as much.
func (n *Store) indexPlan(txn *badger.Txn, pl *readPlan, where aql.Expr) ([]string, bool) {
	tags, ok := candidateTags(where, func(tag string) uint64 { return 0 })
	if !ok {
		return nil, false
	}
	budget := pl.events()/8 + 1
	if budget == 1 {
		return nil, false
	}
	var est uint64
	// Count each tag's entries in range, cheaply (keys only), up to budget.
	counts := map[string]uint64{}
	for _, t := range tags {
		c := countTag(txn, t, pl.minL, pl.maxL, budget-est)
		counts[t] = c
		est += c
		if est >= budget {
			return nil, false
		}
	}
	// With counts known, let each And pick its most selective term.
	tags, _ = candidateTags(where, func(tag string) uint64 { return counts[tag] })
	return tags, true
}

// candidateTags returns tags such that every event where selects carries at
// least one of them, or false if no such set exists (the expression selects
// events by something other than tags). For And it keeps the term with the
// smallest count.
func candidateTags(e aql.Expr, count func(string) uint64) ([]string, bool) {
	switch x := e.(type) {
	case aql.Tag:
		return []string{x.Name}, true
	case aql.Or:
		var out []string
		for _, t := range x.Terms {
			tags, ok := candidateTags(t, count)
			if !ok {
				return nil, false
			}
			out = append(out, tags...)
		}
		slices.Sort(out)
		return slices.Compact(out), true
	case aql.And:
		var best []string
		var bestN uint64
		found := false
		for _, t := range x.Terms {
			tags, ok := candidateTags(t, count)
			if !ok {
				continue
			}
			var n uint64
			for _, tag := range tags {
				n += count(tag)
			}
			if !found || n < bestN {
				best, bestN, found = tags, n, true
			}
		}
		return best, found
	}
	return nil, false
}

// readIndex merges the index entries of tags and loads the events they name.
func (n *Store) readIndex(ctx context.Context, txn *badger.Txn, pl *readPlan, q *aql.Query, tags []string, desc bool) iter.Seq2[*event.Event, error] {
	return func(yield func(*event.Event, error) bool) {
		inputs := make([]iter.Seq2[ref, error], len(tags))
		for i, t := range tags {
			inputs[i] = tagPositions(txn, t, pl, desc)
		}
		key := func(r ref) lamport.EventKey {
			return lamport.EventKey{Lamport: r.lamport, Stream: pl.v.sidKeys[r.sid], Offset: r.offset}
		}
		rd := newBlockReader(txn, pl)
		defer rd.close()
		var last ref
		i := 0
		for p, err := range lamport.Merge(key, desc, inputs...) {
			if err == nil {
				if i++; i%1024 == 0 {
					err = n.checkStop(ctx)
				}
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if i > 1 && p == last {
				continue // an event carrying several of the tags
			}
			last = p
			ev, err := rd.load(p.pos, p.block, q)
			if err != nil {
				yield(nil, err)
				return
			}
			if ev != nil && !yield(ev, nil) {
				return
			}
		}
	}
}

// readStreams yields each stream's events in offset order, streams ordered
// by ID.
func (n *Store) readStreams(ctx context.Context, txn *badger.Txn, pl *readPlan, q *aql.Query) iter.Seq2[*event.Event, error] {
	return func(yield func(*event.Event, error) bool) {
		sids := make([]uint32, 0, len(pl.upper))
		for s := range pl.upper {
			if sid := pl.v.sids[s]; pl.bounds[sid].on {
				sids = append(sids, sid)
			}
		}
		slices.SortFunc(sids, func(a, b uint32) int { return strings.Compare(string(pl.v.names[a]), string(pl.v.names[b])) })
		for _, sid := range sids {
			for ev, err := range n.readStream(ctx, txn, pl, sid, q, false) {
				if !yield(ev, err) || err != nil {
					return
				}
			}
		}
	}
}

// readStream yields one stream's selected events within its bound, in
// offset order (reversed with desc). A record missing in the bound is an
// error, not a gap.
func (n *Store) readStream(ctx context.Context, txn *badger.Txn, pl *readPlan, sid uint32, q *aql.Query, desc bool) iter.Seq2[*event.Event, error] {
	return func(yield func(*event.Event, error) bool) {
		b := pl.bounds[sid]
		i := 0
		err := eachRecord(txn, sid, uint64(b.lo+1), uint64(b.hi+1), desc, func(p pos, v blockRec) (bool, error) {
			if i++; i%1024 == 0 {
				if err := n.checkStop(ctx); err != nil {
					return false, err
				}
			}
			ev, err := pl.decode(p, v, q)
			if err != nil || ev == nil {
				return err == nil, err
			}
			return yield(ev, nil), nil
		})
		if err != nil {
			yield(nil, fmt.Errorf("stream %s: %w", pl.v.names[sid], err))
		}
	}
}

// sortRuns puts runs of events with equal Lamport time, which the store
// orders by interned stream number, into EventKey order (by stream ID).
func sortRuns(in iter.Seq2[*event.Event, error], desc bool) iter.Seq2[*event.Event, error] {
	return func(yield func(*event.Event, error) bool) {
		var run []*event.Event
		flush := func() bool {
			if len(run) > 1 {
				slices.SortFunc(run, func(a, b *event.Event) int {
					c := lamport.Compare(a.Key(), b.Key())
					if desc {
						return -c
					}
					return c
				})
			}
			for _, ev := range run {
				if !yield(ev, nil) {
					return false
				}
			}
			run = run[:0]
			return true
		}
		for ev, err := range in {
			if err != nil {
				yield(nil, err)
				return
			}
			if len(run) > 0 && run[0].Lamport != ev.Lamport && !flush() {
				return
			}
			run = append(run, ev)
		}
		flush()
	}
}
