package store

import (
	"context"
	"fmt"
	"iter"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// Subscribe answers req: the selected events present above req.Lower, one
// offsets item, then live events as they are stored, until ctx ends or the
// node closes. Each round reads exactly the offsets between the previous
// round's and the present ones, so nothing is delivered twice and nothing is
// skipped at the seam between backlog and live events.
func (n *Store) Subscribe(ctx context.Context, req event.SubscribeRequest) iter.Seq2[event.Item, error] {
	return n.subscribe(ctx, req.Lower, req.Query, false)
}

// SubscribeMonotonic is Subscribe in EventKey order: each event carries
// CaughtUp (true on the last event known so far), and when an event older
// than one already delivered arrives, a time-travel item names it and the
// subscription ends; the client rebuilds its state from NewStart.
func (n *Store) SubscribeMonotonic(ctx context.Context, req event.MonotonicRequest) iter.Seq2[event.Item, error] {
	return n.subscribe(ctx, req.Lower, req.Query, true)
}

func (n *Store) subscribe(ctx context.Context, lower event.OffsetMap, q *aql.Query, monotonic bool) iter.Seq2[event.Item, error] {
	return func(yield func(event.Item, error) bool) {
		done, err := n.enter()
		if err != nil {
			yield(event.Item{}, err)
			return
		}
		defer done()
		lower = lower.Clone()
		var (
			last    lamport.EventKey
			sent    bool
			pending *event.Event // held back one event to know which is last
		)
		emit := func(ev *event.Event, caughtUp bool) bool {
			return yield(event.Item{Kind: event.KindEvent, Event: ev, CaughtUp: monotonic && caughtUp}, nil)
		}
		for round := 0; ; round++ {
			v := n.st.snapshot()
			txn, end := n.st.beginRead()
			pl, err := n.resolve(txn, v, lower, nil)
			if err != nil {
				end()
				yield(event.Item{}, fmt.Errorf("subscribe: %w", err))
				return
			}
			if pl.diag != nil && !yield(*pl.diag, nil) {
				end()
				return
			}
			// The loop only notes how it ended: the transaction may end
			// only once the iterators reading it are closed.
			var (
				failed  error
				travel  *lamport.EventKey
				stopped bool
			)
			for ev, err := range n.read(ctx, txn, pl, q, event.Asc) {
				if err != nil {
					failed = err
					break
				}
				if monotonic {
					k := ev.Key()
					if sent && lamport.Compare(k, last) < 0 {
						travel = &k
						break
					}
					last, sent = k, true
				}
				if pending != nil && !emit(pending, false) {
					stopped = true
					break
				}
				pending = ev
			}
			end()
			switch {
			case stopped:
				return
			case failed != nil:
				if ctx.Err() == nil {
					yield(event.Item{}, fmt.Errorf("subscribe: %w", failed))
				}
				return
			case travel != nil:
				if pending != nil && !emit(pending, true) {
					return
				}
				yield(event.Item{Kind: event.KindTimeTravel, NewStart: *travel}, nil)
				return
			}
			if pending != nil {
				if !emit(pending, true) {
					return
				}
				pending = nil
			}
			if round == 0 && !yield(event.Item{Kind: event.KindOffsets, Offsets: pl.upper}, nil) {
				return
			}
			lower = lower.Union(pl.upper)
			select {
			case <-v.changed:
			case <-ctx.Done():
				return
			case <-n.closing:
				yield(event.Item{}, fmt.Errorf("subscribe: %w: node is closing", event.ErrUnavailable))
				return
			}
		}
	}
}
