package sdk

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"

	"github.com/edgelog/edgelog/event"
)

// Aggregate folds the events of a query, in EventKey order, into a state of
// type S with a reducer. States are cached in snapshots (see SnapshotStore),
// so a state is rebuilt from the latest snapshot plus the newer events.
//
// Snapshots are keyed by the aggregate's name and reducer version: change
// Version whenever the reducer or S changes meaning, and the old snapshots
// are ignored (and dropped). When an event older than the state arrives
// (time travel, after a partition heals), the state is rebuilt from the
// latest snapshot that precedes that event.
//
// S is encoded with CBOR for snapshots, so its fields must be exported. The
// reducer gets the current state by value and returns the next one; if S
// holds maps or slices it may update them in place, but a state handed out
// by State or Observe must then not be kept across calls. An Aggregate is
// safe for concurrent use.
type Aggregate[S any] struct {
	log     EventLog
	name    string
	q       Query
	reduce  func(S, Event) (S, error)
	initial []byte // CBOR of the initial state: decoded afresh for each rebuild
	o       aggOpts
	err     error // a construction error, reported by every call

	mu  sync.Mutex
	cur *folded[S] // the state State computed last, reused by the next call
}

// folded is a state with what it covers.
type folded[S any] struct {
	state   S
	key     EventKey  // last event folded in
	any     bool      // any event folded in (key is valid)
	offsets OffsetMap // every selected event up to these is folded in
	since   int       // events folded since the last snapshot
}

// AggregateOption configures an Aggregate.
type AggregateOption func(*aggOpts)

type aggOpts struct {
	version int
	store   SnapshotStore
	every   int
	logger  *slog.Logger
}

// Version sets the reducer version (default 1). Snapshots of other versions
// are invalid for this aggregate.
func Version(n int) AggregateOption { return func(o *aggOpts) { o.version = n } }

// WithSnapshots sets where snapshots are kept. The default is the log's own
// store (Embedded.Snapshots, Remote.Snapshots); nil disables snapshots.
func WithSnapshots(s SnapshotStore) AggregateOption {
	return func(o *aggOpts) {
		if s == nil {
			s = noSnapshots{}
		}
		o.store = s
	}
}

// SnapshotEvery makes the aggregate save a snapshot once at least n events
// were folded in since the last one (default 1000).
func SnapshotEvery(n int) AggregateOption { return func(o *aggOpts) { o.every = max(n, 1) } }

// AggregateLogger sets where snapshot failures are logged (default
// slog.Default()); they do not fail State or Observe.
func AggregateLogger(l *slog.Logger) AggregateOption { return func(o *aggOpts) { o.logger = l } }

// NewAggregate declares an aggregate called name (unique per log: it keys
// the snapshots) over the events q selects. A query or initial state that
// cannot be used is reported by every call of the aggregate.
func NewAggregate[S any](log EventLog, name string, q Query, initial S, reduce func(S, Event) (S, error), opts ...AggregateOption) *Aggregate[S] {
	a := &Aggregate[S]{log: log, name: name, q: q, reduce: reduce, o: aggOpts{version: 1, every: 1000}}
	for _, f := range opts {
		f(&a.o)
	}
	if a.o.logger == nil {
		a.o.logger = slog.Default()
	}
	if a.o.store == nil {
		if s, ok := log.(interface{ Snapshots() SnapshotStore }); ok {
			a.o.store = s.Snapshots()
		} else {
			a.o.store = NewMemSnapshotStore()
		}
	}
	var err error
	a.initial, err = event.MarshalCBOR(initial)
	switch {
	case err != nil:
		a.err = fmt.Errorf("sdk: aggregate %s: %w: initial state: %w", name, ErrInvalid, err)
	case name == "":
		a.err = fmt.Errorf("sdk: aggregate: %w: empty name", ErrInvalid)
	case reduce == nil:
		a.err = fmt.Errorf("sdk: aggregate %s: %w: nil reducer", name, ErrInvalid)
	case q.Err() != nil:
		a.err = fmt.Errorf("sdk: aggregate %s: %w", name, q.Err())
	}
	return a
}

// Name returns the aggregate's name.
func (a *Aggregate[S]) Name() string { return a.name }

// Query returns the aggregate's query.
func (a *Aggregate[S]) Query() Query { return a.q }

// State returns the state over every selected event present now, and the
// key of the last of them (the zero key if there is none; pass it to
// PublishIf to guard a decision based on this state).
func (a *Aggregate[S]) State(ctx context.Context) (S, EventKey, error) {
	var zero S
	if a.err != nil {
		return zero, EventKey{}, a.err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	off, err := a.log.Offsets(ctx)
	if err != nil {
		return zero, EventKey{}, fmt.Errorf("sdk: aggregate %s: %w", a.name, err)
	}
	cur := a.cur
	a.cur = nil // restored on success: a failed fold leaves no half state behind
	if cur == nil {
		if cur, err = a.load(ctx, nil); err != nil {
			return zero, EventKey{}, err
		}
	}
	for {
		var tt *TimeTravelError
		err := a.catchUp(ctx, cur, off.Present)
		if errors.As(err, &tt) {
			if cur, err = a.rewind(ctx, tt.NewStart); err != nil {
				return zero, EventKey{}, err
			}
			continue
		}
		if err != nil {
			return zero, EventKey{}, err
		}
		break
	}
	a.maybeSnapshot(ctx, cur)
	a.cur = cur
	return cur.state, cur.key, nil
}

// catchUp folds into cur the selected events above cur.offsets up to upper.
// An event older than cur.key is time travel.
func (a *Aggregate[S]) catchUp(ctx context.Context, cur *folded[S], upper OffsetMap) error {
	for ev, err := range a.log.Query(ctx, a.q, After(cur.offsets), UpTo(upper)) {
		if err != nil {
			return fmt.Errorf("sdk: aggregate %s: %w", a.name, err)
		}
		if err := a.fold(cur, ev); err != nil {
			return err
		}
	}
	cur.offsets = cur.offsets.Union(upper)
	return nil
}

// fold applies ev to cur, or returns a *TimeTravelError if ev is older than
// what cur covers.
func (a *Aggregate[S]) fold(cur *folded[S], ev Event) error {
	k := ev.Key()
	if cur.any && !cur.key.Less(k) {
		return &TimeTravelError{NewStart: k}
	}
	s, err := a.reduce(cur.state, ev)
	if err != nil {
		return fmt.Errorf("sdk: aggregate %s: reducing event %s: %w", a.name, k, err)
	}
	cur.state, cur.key, cur.any = s, k, true
	cur.offsets[ev.Stream] = ev.Offset
	cur.since++
	return nil
}

// load returns the state of the latest valid snapshot (before *before, if
// given), or the initial state.
func (a *Aggregate[S]) load(ctx context.Context, before *EventKey) (*folded[S], error) {
	snap, ok, err := a.o.store.Latest(ctx, a.name, a.o.version, before)
	if err != nil {
		return nil, fmt.Errorf("sdk: aggregate %s: loading snapshot: %w", a.name, err)
	}
	if ok {
		f := &folded[S]{key: snap.Key, any: true, offsets: snap.Offsets.Clone()}
		if err := event.UnmarshalCBOR(snap.State, &f.state); err == nil {
			if f.offsets == nil {
				f.offsets = OffsetMap{}
			}
			return f, nil
		}
		a.o.logger.Warn("sdk: ignoring undecodable snapshot", "aggregate", a.name, "key", snap.Key.String())
	}
	f := &folded[S]{offsets: OffsetMap{}}
	if err := event.UnmarshalCBOR(a.initial, &f.state); err != nil {
		return nil, fmt.Errorf("sdk: aggregate %s: initial state: %w", a.name, err)
	}
	return f, nil
}

// rewind drops the snapshots at or after from and loads the latest one
// before it.
func (a *Aggregate[S]) rewind(ctx context.Context, from EventKey) (*folded[S], error) {
	a.o.logger.Debug("sdk: time travel; rebuilding", "aggregate", a.name, "from", from.String())
	if err := a.o.store.Invalidate(ctx, a.name, from); err != nil {
		return nil, fmt.Errorf("sdk: aggregate %s: %w", a.name, err)
	}
	return a.load(ctx, &from)
}

// maybeSnapshot saves cur if enough events were folded since the last
// snapshot. Failures are logged.
func (a *Aggregate[S]) maybeSnapshot(ctx context.Context, cur *folded[S]) {
	if !cur.any || cur.since < a.o.every {
		return
	}
	state, err := event.MarshalCBOR(cur.state)
	if err == nil {
		err = a.o.store.Save(ctx, Snapshot{Name: a.name, Version: a.o.version, Key: cur.key, Offsets: cur.offsets.Clone(), State: state})
	}
	if err != nil {
		a.o.logger.Warn("sdk: saving snapshot failed", "aggregate", a.name, "err", err)
		return
	}
	cur.since = 0
}

// Observe yields the state once it has caught up with the events present,
// then again after each burst of new events changed it, until ctx ends.
// After time travel it rebuilds the state from the latest valid snapshot
// and yields it once caught up again. It yields an error (and ends) only
// for failures a retry cannot fix.
func (a *Aggregate[S]) Observe(ctx context.Context) iter.Seq2[S, error] {
	return func(yield func(S, error) bool) {
		var zero S
		if a.err != nil {
			yield(zero, a.err)
			return
		}
		cur, err := a.load(ctx, nil)
		if err != nil {
			yield(zero, err)
			return
		}
		for {
			var tt *TimeTravelError
			changed, first := false, true
			for u, err := range a.log.SubscribeMonotonic(ctx, a.q, After(cur.offsets)) {
				if err != nil {
					if errors.As(err, &tt) {
						break
					}
					yield(zero, fmt.Errorf("sdk: aggregate %s: %w", a.name, err))
					return
				}
				if u.Event != nil {
					if err := a.fold(cur, *u.Event); err != nil {
						if errors.As(err, &tt) {
							break
						}
						yield(zero, err)
						return
					}
					changed = true
				} else {
					cur.offsets = cur.offsets.Union(u.Offsets)
				}
				if u.CaughtUp && (changed || first) {
					changed, first = false, false
					a.maybeSnapshot(ctx, cur)
					if !yield(cur.state, nil) {
						return
					}
				}
			}
			if tt == nil {
				return // ctx ended
			}
			if cur, err = a.rewind(ctx, tt.NewStart); err != nil {
				yield(zero, err)
				return
			}
		}
	}
}

// noSnapshots is a SnapshotStore that keeps nothing.
type noSnapshots struct{}

func (noSnapshots) Save(context.Context, Snapshot) error { return nil }
func (noSnapshots) Latest(context.Context, string, int, *EventKey) (Snapshot, bool, error) {
	return Snapshot{}, false, nil
}
func (noSnapshots) Invalidate(context.Context, string, EventKey) error { return nil }
