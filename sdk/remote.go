package sdk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"time"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/api/client"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// Remote is a client of a node's HTTP Events API. It authenticates with its
// manifest and renews its token when the node rejects it.
//
// Payloads travel as JSON over the API: values must survive the JSON
// round trip (no byte strings, no non-string map keys; integral floats come
// back as integers, which decode into float fields unchanged).
type Remote struct {
	c       *client.Client
	o       options
	snaps   SnapshotStore
	session string
}

var _ EventLog = (*Remote)(nil)

// Dial returns a client of the node at url (like http://127.0.0.1:4454)
// that identifies as manifest. No request is made until the first call.
func Dial(url string, manifest Manifest, opts ...Option) (*Remote, error) {
	o := newOptions(opts)
	o.manifest = manifest
	var copts []client.Option
	if o.httpClient != nil {
		copts = append(copts, client.WithHTTPClient(o.httpClient))
	}
	c, err := client.New(url, manifest, copts...)
	if err != nil {
		return nil, fmt.Errorf("sdk: dial: %w: %w", ErrInvalid, err)
	}
	snaps, err := defaultSnapshots(o, o.dataDir)
	if err != nil {
		return nil, fmt.Errorf("sdk: dial: %w", err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Remote{c: c, o: o, snaps: snaps, session: "sdk-" + hex.EncodeToString(b[:])}, nil
}

// Snapshots returns the default store of aggregate snapshots: in
// WithDataDir's directory, or in memory without one.
func (r *Remote) Snapshots() SnapshotStore { return r.snaps }

// NodeID returns the node's ID.
func (r *Remote) NodeID(ctx context.Context) (string, error) {
	id, err := r.c.NodeID(ctx)
	if err != nil {
		return "", remoteErr("node id", err)
	}
	return id, nil
}

// Offsets returns what the node holds and knows to exist elsewhere.
func (r *Remote) Offsets(ctx context.Context) (Offsets, error) {
	off, err := r.c.Offsets(ctx)
	if err != nil {
		return Offsets{}, remoteErr("offsets", err)
	}
	if off.Present == nil {
		off.Present = OffsetMap{}
	}
	return off, nil
}

// Publish encodes the drafts' values and publishes them atomically.
func (r *Remote) Publish(ctx context.Context, events ...Draft) ([]Meta, error) {
	return r.PublishWith(ctx, PublishOptions{}, events...)
}

// publish sends ds with req's options.
func (r *Remote) publish(ctx context.Context, ds []event.Draft, req api.PublishRequest) ([]Meta, error) {
	pes := make([]client.PublishEvent, len(ds))
	for i, d := range ds {
		js, err := event.PayloadToJSON(d.Payload)
		if err != nil {
			return nil, fmt.Errorf("sdk: publish: %w: event %d: %w", ErrInvalid, i, err)
		}
		tags := d.Tags
		if tags == nil {
			tags = []string{}
		}
		pes[i] = client.PublishEvent{Tags: tags, Payload: js}
	}
	req.Data = pes
	metas, err := r.c.PublishWith(ctx, req)
	if err != nil {
		if c, ok := remoteConflict(err); ok {
			return nil, c
		}
		return nil, remoteErr("publish", err)
	}
	return metas, nil
}

// Query returns the selected events; see EventLog.
func (r *Remote) Query(ctx context.Context, q Query, opts ...ReadOption) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		if err := q.Err(); err != nil {
			yield(Event{}, err)
			return
		}
		o := readOptions(opts)
		order := map[event.Order]string{event.Asc: "asc", event.Desc: "desc", event.StreamAsc: "stream-asc"}[o.order]
		req := client.QueryRequest{LowerBound: o.lower, UpperBound: o.upper, Query: q.String(), Order: order}
		for l, err := range r.c.Query(ctx, req) {
			if err != nil {
				yield(Event{}, remoteErr("query", err))
				return
			}
			ev, ok, err := lineEvent(l)
			if err != nil {
				yield(Event{}, fmt.Errorf("sdk: query: %w", err))
				return
			}
			if ok && !yield(ev, nil) {
				return
			}
		}
		if err := ctx.Err(); err != nil {
			yield(Event{}, fmt.Errorf("sdk: query: %w", err))
		}
	}
}

// Subscribe returns the selected events, then live ones; see EventLog.
//
// When the connection fails or the node restarts, Subscribe reconnects
// (waiting as WithReconnectBackoff says) and resumes right after the last
// event delivered in each stream, so no event is skipped or repeated. It
// gives up only on errors that a retry cannot fix (a bad query, a rejected
// app) or when ctx ends.
func (r *Remote) Subscribe(ctx context.Context, q Query, opts ...ReadOption) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		o := readOptions(opts)
		if err := errors.Join(q.Err(), o.forSubscribe()); err != nil {
			yield(Event{}, err)
			return
		}
		lower := o.lower.Clone()
		if lower == nil {
			lower = OffsetMap{}
		}
		r.retry(ctx, yieldErrAs(yield), func() (bool, error) {
			progressed := false
			for l, err := range r.c.Subscribe(ctx, client.SubscribeRequest{LowerBound: lower, Query: q.String()}) {
				if err != nil {
					return progressed, remoteErr("subscribe", err)
				}
				if l.Type == api.LineOffsets {
					lower = lower.Union(l.Offsets)
					progressed = true
					continue
				}
				ev, ok, err := lineEvent(l)
				if err != nil {
					return progressed, fmt.Errorf("sdk: subscribe: %w", err)
				}
				if !ok || lower.Contains(ev.Stream, ev.Offset) {
					continue
				}
				lower[ev.Stream] = ev.Offset
				progressed = true
				if !yield(ev, nil) {
					return progressed, errStop
				}
			}
			return progressed, fmt.Errorf("sdk: subscribe: %w: %w", ErrUnavailable, client.ErrStreamEnded)
		})
	}
}

// SubscribeMonotonic returns the selected events in EventKey order; see
// EventLog. It reconnects as Subscribe does; an event older than the last
// one delivered that shows up after a reconnect ends it with a
// *TimeTravelError, as the node would.
func (r *Remote) SubscribeMonotonic(ctx context.Context, q Query, opts ...ReadOption) iter.Seq2[Update, error] {
	return func(yield func(Update, error) bool) {
		o := readOptions(opts)
		if err := errors.Join(q.Err(), o.forSubscribe()); err != nil {
			yield(Update{}, err)
			return
		}
		lower := o.lower.Clone()
		if lower == nil {
			lower = OffsetMap{}
		}
		var (
			last EventKey
			sent bool
		)
		r.retry(ctx, func(err error) { yield(Update{}, err) }, func() (bool, error) {
			progressed := false
			req := client.MonotonicRequest{Session: r.session, LowerBound: lower, Query: q.String()}
			for l, err := range r.c.SubscribeMonotonic(ctx, req) {
				if err != nil {
					return progressed, remoteErr("subscribe monotonic", err)
				}
				switch l.Type {
				case api.LineOffsets:
					lower = lower.Union(l.Offsets)
					progressed = true
					if !yield(Update{CaughtUp: true, Offsets: l.Offsets}, nil) {
						return progressed, errStop
					}
					continue
				case api.LineTimeTravel:
					return progressed, permanent{&TimeTravelError{NewStart: l.NewStart}}
				}
				ev, ok, err := lineEvent(l)
				if err != nil {
					return progressed, fmt.Errorf("sdk: subscribe monotonic: %w", err)
				}
				if !ok || lower.Contains(ev.Stream, ev.Offset) {
					continue
				}
				if k := ev.Key(); sent && lamport.Compare(k, last) < 0 {
					return progressed, permanent{&TimeTravelError{NewStart: k}}
				}
				last, sent = ev.Key(), true
				lower[ev.Stream] = ev.Offset
				progressed = true
				if !yield(Update{Event: &ev, CaughtUp: l.CaughtUp}, nil) {
					return progressed, errStop
				}
			}
			return progressed, fmt.Errorf("sdk: subscribe monotonic: %w: %w", ErrUnavailable, client.ErrStreamEnded)
		})
	}
}

// errStop says the consumer stopped iterating.
var errStop = errors.New("stop")

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

func yieldErrAs(yield func(Event, error) bool) func(error) {
	return func(err error) { yield(Event{}, err) }
}

// retry runs attempt until it stops, ctx ends or it fails permanently
// (reported with fail). Between attempts it waits with exponential backoff,
// reset whenever an attempt made progress.
func (r *Remote) retry(ctx context.Context, fail func(error), attempt func() (progressed bool, err error)) {
	wait := r.o.backoffMin
	for {
		progressed, err := attempt()
		if errors.Is(err, errStop) || ctx.Err() != nil {
			return
		}
		if isPermanent(err) {
			var p permanent
			if errors.As(err, &p) {
				err = p.err
			}
			fail(err)
			return
		}
		if progressed {
			wait = r.o.backoffMin
		}
		r.o.logger.Debug("sdk: subscription interrupted; reconnecting", "err", err, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, r.o.backoffMax)
	}
}

// isPermanent reports whether retrying err is pointless.
func isPermanent(err error) bool {
	var p permanent
	if errors.As(err, &p) {
		return true
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status == http.StatusBadRequest || ae.Status == http.StatusForbidden ||
			ae.Status == http.StatusNotFound || ae.Status == http.StatusRequestEntityTooLarge
	}
	return errors.Is(err, ErrInvalid)
}

// remoteErr wraps an error of the client; failures to reach the node wrap
// ErrUnavailable.
func remoteErr(op string, err error) error {
	var ae *api.Error
	if errors.As(err, &ae) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sdk: %s: %w", op, err)
	}
	return fmt.Errorf("sdk: %s: %w: %w", op, ErrUnavailable, err)
}

// lineEvent returns the event of an event line, or the error of an error
// diagnostic; other lines carry nothing.
func lineEvent(l client.Line) (Event, bool, error) {
	switch l.Type {
	case api.LineEvent:
		payload, err := event.PayloadFromJSON(l.Event.Payload)
		if err != nil {
			return Event{}, false, permanent{fmt.Errorf("event %s: %w", l.Event.Key(), err)}
		}
		e := l.Event
		return Event{
			Meta: Meta{Lamport: e.Lamport, Offset: e.Offset, Stream: e.Stream, Timestamp: e.Timestamp},
			Tags: e.Tags, AppID: e.AppID, Payload: payload,
		}, true, nil
	case api.LineDiagnostic:
		if l.Severity == api.SeverityError {
			return Event{}, false, fmt.Errorf("%w: node reported: %s", ErrUnavailable, l.Message)
		}
	}
	return Event{}, false, nil
}
