package sdktest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
	"github.com/edgelog/edgelog/sdk"
)

// MemLog is an sdk.EventLog in memory, for unit tests. Besides publishing
// to its own stream it accepts events of other streams with any key
// (Inject), which is how a test makes time travel happen without a swarm.
// It is not a node: it enforces no limits. It keeps idempotency keys and
// consumer status (it is a sdk.ConsumerStore) in memory, and checks guards
// under its lock, so PublishWith behaves as on a node.
type MemLog struct {
	*sdk.MemConsumerStore
	node string

	mu      sync.Mutex
	events  []sdk.Event // every event, in no particular order
	lamport uint64
	changed chan struct{} // closed and replaced on every change
	idem    map[string]idemRecord
}

type idemRecord struct {
	fingerprint string
	metas       []sdk.Meta
}

var (
	_ sdk.EventLog      = (*MemLog)(nil)
	_ sdk.ConsumerStore = (*MemLog)(nil)
)

// NewMemLog returns an empty MemLog whose own node ID is nodeID.
func NewMemLog(nodeID string) *MemLog {
	return &MemLog{MemConsumerStore: sdk.NewMemConsumerStore(), node: nodeID, changed: make(chan struct{}), idem: map[string]idemRecord{}}
}

// NodeID returns the log's node ID.
func (m *MemLog) NodeID(context.Context) (string, error) { return m.node, nil }

// Offsets returns the highest offset of every stream.
func (m *MemLog) Offsets(context.Context) (sdk.Offsets, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sdk.Offsets{Present: m.offsetsLocked(), ToReplicate: map[sdk.StreamID]uint64{}}, nil
}

func (m *MemLog) offsetsLocked() sdk.OffsetMap {
	off := sdk.OffsetMap{}
	for _, ev := range m.events {
		if cur, ok := off[ev.Stream]; !ok || ev.Offset > cur {
			off[ev.Stream] = ev.Offset
		}
	}
	return off
}

// Publish appends the events to stream <nodeID>-0.
func (m *MemLog) Publish(ctx context.Context, drafts ...sdk.Draft) ([]sdk.Meta, error) {
	return m.PublishWith(ctx, sdk.PublishOptions{}, drafts...)
}

// PublishWith appends the events to stream <nodeID>-0 unless the
// idempotency key is known (returning its metas) or the guard fails
// (returning a *sdk.ConflictError).
func (m *MemLog) PublishWith(_ context.Context, opts sdk.PublishOptions, drafts ...sdk.Draft) ([]sdk.Meta, error) {
	if len(drafts) == 0 {
		return nil, fmt.Errorf("memlog: publish: %w: no events", sdk.ErrInvalid)
	}
	if g := opts.Guard; g != nil && g.Query.Err() != nil {
		return nil, fmt.Errorf("memlog: publish: guard: %w", g.Query.Err())
	}
	evs := make([]sdk.Event, len(drafts))
	for i, d := range drafts {
		for _, tag := range d.Tags {
			if tag == "" {
				return nil, fmt.Errorf("memlog: publish: %w: empty tag", sdk.ErrInvalid)
			}
		}
		payload, ok := d.Value.(sdk.RawCBOR)
		if !ok {
			var err error
			if payload, err = event.MarshalCBOR(d.Value); err != nil {
				return nil, fmt.Errorf("memlog: publish: %w: %v", sdk.ErrInvalid, err)
			}
		}
		evs[i] = sdk.Event{Tags: slices.Clone(d.Tags), AppID: "com.example.memlog", Payload: payload}
	}
	fp := fingerprint(evs)
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := opts.IdempotencyKey; k != "" {
		if rec, ok := m.idem[k]; ok {
			if rec.fingerprint != fp {
				return nil, fmt.Errorf("memlog: publish: key %q: %w", k, sdk.ErrIdempotencyMismatch)
			}
			return slices.Clone(rec.metas), nil
		}
	}
	if g := opts.Guard; g != nil {
		var changed []sdk.Event
		for _, ev := range m.events {
			if g.Since.Less(ev.Key()) && g.Query.Matches(ev, ev.Stream.Node() == m.node) {
				changed = append(changed, ev)
			}
		}
		if len(changed) > 0 {
			slices.SortFunc(changed, func(a, b sdk.Event) int { return lamport.Compare(a.Key(), b.Key()) })
			c := &sdk.ConflictError{Changed: changed}
			if n := len(changed); n > event.MaxConflictEvents {
				c.Changed, c.More = changed[n-event.MaxConflictEvents:], true
			}
			return nil, c
		}
	}
	stream := event.NewStreamID(m.node, 0)
	next := uint64(0)
	if hi, ok := m.offsetsLocked()[stream]; ok {
		next = hi + 1
	}
	metas := make([]sdk.Meta, len(evs))
	for i := range evs {
		m.lamport++
		evs[i].Meta = sdk.Meta{Lamport: m.lamport, Stream: stream, Offset: next + uint64(i), Timestamp: time.Now().UnixMicro()}
		metas[i] = evs[i].Meta
	}
	m.events = append(m.events, evs...)
	if k := opts.IdempotencyKey; k != "" {
		m.idem[k] = idemRecord{fingerprint: fp, metas: slices.Clone(metas)}
	}
	m.notifyLocked()
	return metas, nil
}

// fingerprint identifies events by their tag sets and payloads.
func fingerprint(evs []sdk.Event) string {
	h := sha256.New()
	for _, ev := range evs {
		tags := slices.Clone(ev.Tags)
		slices.Sort(tags)
		fmt.Fprintf(h, "%q:%d:", slices.Compact(tags), len(ev.Payload))
		h.Write(ev.Payload)
	}
	return string(h.Sum(nil))
}

// Inject adds ev as if it had been replicated from its origin: with its own
// key (Lamport, Stream, Offset). The Lamport clock advances past it. Offsets
// of a stream should be injected gapless.
func (m *MemLog) Inject(ev sdk.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lamport = max(m.lamport, ev.Lamport)
	m.events = append(m.events, ev)
	m.notifyLocked()
}

func (m *MemLog) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// selected returns the events q selects within (lower, upper], sorted
// ascending, and the channel closed on the next change.
func (m *MemLog) selected(q sdk.Query, lower, upper sdk.OffsetMap) ([]sdk.Event, sdk.OffsetMap, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if upper == nil {
		upper = m.offsetsLocked()
	}
	var out []sdk.Event
	for _, ev := range m.events {
		if lower.Contains(ev.Stream, ev.Offset) || !upper.Contains(ev.Stream, ev.Offset) {
			continue
		}
		if q.Matches(ev, ev.Stream.Node() == m.node) {
			out = append(out, ev)
		}
	}
	slices.SortFunc(out, func(a, b sdk.Event) int { return lamport.Compare(a.Key(), b.Key()) })
	return out, upper, m.changed
}

// Query returns the selected events.
func (m *MemLog) Query(ctx context.Context, q sdk.Query, opts ...sdk.ReadOption) iter.Seq2[sdk.Event, error] {
	return func(yield func(sdk.Event, error) bool) {
		if err := q.Err(); err != nil {
			yield(sdk.Event{}, err)
			return
		}
		p := sdk.ApplyReadOptions(opts...)
		evs, _, _ := m.selected(q, p.Lower, p.Upper)
		switch p.Order {
		case event.Desc:
			slices.Reverse(evs)
		case event.StreamAsc:
			slices.SortStableFunc(evs, func(a, b sdk.Event) int {
				return cmp.Or(cmp.Compare(a.Stream, b.Stream), cmp.Compare(a.Offset, b.Offset))
			})
		}
		for _, ev := range evs {
			if ctx.Err() != nil {
				yield(sdk.Event{}, ctx.Err())
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}
}

// Subscribe returns the selected events, then live ones.
func (m *MemLog) Subscribe(ctx context.Context, q sdk.Query, opts ...sdk.ReadOption) iter.Seq2[sdk.Event, error] {
	return func(yield func(sdk.Event, error) bool) {
		for u, err := range m.subscribe(ctx, q, opts, false) {
			if err != nil {
				yield(sdk.Event{}, err)
				return
			}
			if u.Event != nil && !yield(*u.Event, nil) {
				return
			}
		}
	}
}

// SubscribeMonotonic returns the selected events in EventKey order and ends
// with *sdk.TimeTravelError when an older event than one delivered arrives.
func (m *MemLog) SubscribeMonotonic(ctx context.Context, q sdk.Query, opts ...sdk.ReadOption) iter.Seq2[sdk.Update, error] {
	return m.subscribe(ctx, q, opts, true)
}

func (m *MemLog) subscribe(ctx context.Context, q sdk.Query, opts []sdk.ReadOption, monotonic bool) iter.Seq2[sdk.Update, error] {
	return func(yield func(sdk.Update, error) bool) {
		if err := q.Err(); err != nil {
			yield(sdk.Update{}, err)
			return
		}
		p := sdk.ApplyReadOptions(opts...)
		if p.Upper != nil || p.Order != event.Asc {
			yield(sdk.Update{}, fmt.Errorf("memlog: subscribe: %w: only After applies", sdk.ErrInvalid))
			return
		}
		lower := p.Lower.Clone()
		if lower == nil {
			lower = sdk.OffsetMap{}
		}
		var (
			last sdk.EventKey
			sent bool
		)
		for round := 0; ; round++ {
			evs, upper, changed := m.selected(q, lower, nil)
			for i, ev := range evs {
				if monotonic && sent && ev.Key().Less(last) {
					yield(sdk.Update{}, &sdk.TimeTravelError{NewStart: ev.Key()})
					return
				}
				last, sent = ev.Key(), true
				if !yield(sdk.Update{Event: &ev, CaughtUp: monotonic && i == len(evs)-1}, nil) {
					return
				}
			}
			lower = lower.Union(upper)
			if round == 0 && !yield(sdk.Update{CaughtUp: true, Offsets: upper}, nil) {
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}
}
