// Package fakebackend is an in-memory api.Backend for the tests of package
// api and its client. It stores published events in one stream, answers
// queries from them, and lets tests inject errors, push live items and
// observe when a stream's context is cancelled.
package fakebackend

import (
	"context"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
)

// Backend is an in-memory api.Backend. Set its exported fields before the
// requests that use them.
type Backend struct {
	// ID is the node id; events go to stream ID-0.
	ID string
	// NodeInfo is what Info returns.
	NodeInfo event.NodeInfo
	// ToReplicate is what Offsets reports besides the present events.
	ToReplicate map[event.StreamID]uint64

	// Errors returned by the calls (nil: succeed).
	InfoErr, OffsetsErr, PublishErr error
	// StreamErr is yielded as the first element of every stream.
	StreamErr error
	// MidStreamErr is yielded by Query after its events, instead of the
	// final offsets item.
	MidStreamErr error
	// PanicInfo makes Info panic.
	PanicInfo bool

	// QuerySeq, if set, replaces Query.
	QuerySeq func(ctx context.Context, req event.QueryRequest) iter.Seq2[event.Item, error]

	// Live feeds subscriptions after their backlog.
	Live chan event.Item
	// Ended receives one value whenever a stream stops because its
	// context was cancelled.
	Ended chan struct{}

	mu         sync.Mutex
	events     []event.Event
	lamport    uint64
	publishes  int
	lastApp    string
	lastDrafts []event.Draft
	lastQuery  event.QueryRequest
	lastSub    event.SubscribeRequest
	lastMono   event.MonotonicRequest
}

// New returns an empty Backend for node id.
func New(id string) *Backend {
	return &Backend{
		ID: id,
		NodeInfo: event.NodeInfo{
			ConnectedNodes: 2, Uptime: 90*time.Second + 5, Version: "test-1.0",
			Peers: []event.PeerInfo{{NodeID: "12D3KooWPeer", Addrs: []string{"/ip4/10.0.0.2/tcp/4455"}, Connected: true, Announced: true, Lag: 3, Behind: 1}},
		},
		Live:  make(chan event.Item),
		Ended: make(chan struct{}, 16),
	}
}

// Stream returns the backend's one stream.
func (b *Backend) Stream() event.StreamID { return event.NewStreamID(b.ID, 0) }

// Add stores events as they are, bypassing Publish.
func (b *Backend) Add(evs ...event.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, evs...)
	for _, e := range evs {
		b.lamport = max(b.lamport, e.Lamport)
	}
}

// LastPublish returns the app id and drafts of the last Publish call and
// how many calls there were.
func (b *Backend) LastPublish() (appID string, drafts []event.Draft, calls int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastApp, b.lastDrafts, b.publishes
}

// LastQuery returns the last query request.
func (b *Backend) LastQuery() event.QueryRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastQuery
}

// LastSubscribe returns the last subscribe request.
func (b *Backend) LastSubscribe() event.SubscribeRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastSub
}

// LastMonotonic returns the last monotonic subscribe request.
func (b *Backend) LastMonotonic() event.MonotonicRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastMono
}

// NodeID implements api.Backend.
func (b *Backend) NodeID() string { return b.ID }

// Info implements api.Backend.
func (b *Backend) Info(ctx context.Context) (event.NodeInfo, error) {
	if b.PanicInfo {
		panic("fakebackend: Info panics as asked")
	}
	return b.NodeInfo, b.InfoErr
}

// Offsets implements api.Backend.
func (b *Backend) Offsets(ctx context.Context) (event.Offsets, error) {
	if b.OffsetsErr != nil {
		return event.Offsets{}, b.OffsetsErr
	}
	return event.Offsets{Present: b.present(), ToReplicate: b.ToReplicate}, nil
}

func (b *Backend) present() event.OffsetMap {
	b.mu.Lock()
	defer b.mu.Unlock()
	var m event.OffsetMap
	for _, e := range b.events {
		if m == nil {
			m = event.OffsetMap{}
		}
		if cur, ok := m[e.Stream]; !ok || e.Offset > cur {
			m[e.Stream] = e.Offset
		}
	}
	return m
}

// Publish implements api.Backend.
func (b *Backend) Publish(ctx context.Context, appID string, drafts []event.Draft) ([]event.Meta, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.publishes++
	b.lastApp, b.lastDrafts = appID, drafts
	if b.PublishErr != nil {
		return nil, b.PublishErr
	}
	metas := make([]event.Meta, len(drafts))
	for i, d := range drafts {
		b.lamport++
		e := event.Event{
			Lamport:   b.lamport,
			Stream:    b.Stream(),
			Offset:    uint64(len(b.events)),
			Timestamp: time.Now().UnixMicro(),
			Tags:      slices.Clone(d.Tags),
			AppID:     appID,
			Payload:   slices.Clone(d.Payload),
		}
		b.events = append(b.events, e)
		metas[i] = event.Meta{Lamport: e.Lamport, Offset: e.Offset, Stream: e.Stream, Timestamp: e.Timestamp}
	}
	return metas, nil
}

// matching returns copies of the stored events the query selects (only tag
// and allEvents queries are understood; others select everything).
func (b *Backend) matching(q *aql.Query) []event.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []event.Event
	for _, e := range b.events {
		if q != nil {
			if t, ok := q.Where.(aql.Tag); ok && !e.HasTag(t.Name) {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

// Query implements api.Backend.
func (b *Backend) Query(ctx context.Context, req event.QueryRequest) iter.Seq2[event.Item, error] {
	b.mu.Lock()
	b.lastQuery = req
	b.mu.Unlock()
	if b.QuerySeq != nil {
		return b.QuerySeq(ctx, req)
	}
	return func(yield func(event.Item, error) bool) {
		if b.StreamErr != nil {
			yield(event.Item{}, b.StreamErr)
			return
		}
		evs := b.matching(req.Query)
		if req.Order == event.Desc {
			slices.Reverse(evs)
		}
		for i := range evs {
			if !yield(event.Item{Kind: event.KindEvent, Event: &evs[i]}, nil) {
				return
			}
		}
		if b.MidStreamErr != nil {
			yield(event.Item{}, b.MidStreamErr)
			return
		}
		yield(event.Item{Kind: event.KindOffsets, Offsets: b.present()}, nil)
	}
}

// Subscribe implements api.Backend.
func (b *Backend) Subscribe(ctx context.Context, req event.SubscribeRequest) iter.Seq2[event.Item, error] {
	b.mu.Lock()
	b.lastSub = req
	b.mu.Unlock()
	return func(yield func(event.Item, error) bool) {
		if b.StreamErr != nil {
			yield(event.Item{}, b.StreamErr)
			return
		}
		evs := b.matching(req.Query)
		for i := range evs {
			if !yield(event.Item{Kind: event.KindEvent, Event: &evs[i]}, nil) {
				return
			}
		}
		if !yield(event.Item{Kind: event.KindOffsets, Offsets: b.present()}, nil) {
			return
		}
		b.live(ctx, yield)
	}
}

// SubscribeMonotonic implements api.Backend.
func (b *Backend) SubscribeMonotonic(ctx context.Context, req event.MonotonicRequest) iter.Seq2[event.Item, error] {
	b.mu.Lock()
	b.lastMono = req
	b.mu.Unlock()
	return func(yield func(event.Item, error) bool) {
		if b.StreamErr != nil {
			yield(event.Item{}, b.StreamErr)
			return
		}
		evs := b.matching(req.Query)
		for i := range evs {
			if !yield(event.Item{Kind: event.KindEvent, Event: &evs[i], CaughtUp: i == len(evs)-1}, nil) {
				return
			}
		}
		b.live(ctx, yield)
	}
}

// live forwards Live items until ctx is cancelled or a time-travel item has
// been forwarded.
func (b *Backend) live(ctx context.Context, yield func(event.Item, error) bool) {
	for {
		select {
		case it := <-b.Live:
			if !yield(it, nil) || it.Kind == event.KindTimeTravel {
				return
			}
		case <-ctx.Done():
			select {
			case b.Ended <- struct{}{}:
			default:
			}
			yield(event.Item{}, ctx.Err())
			return
		}
	}
}
