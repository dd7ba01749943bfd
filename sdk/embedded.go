package sdk

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"path/filepath"
	"sync"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/node"
	"github.com/edgelog/edgelog/store"
)

// Embedded is an edgelog node running in the app's process.
type Embedded struct {
	n     *node.Node
	appID string
	url   string
	snaps SnapshotStore

	stopHTTP  context.CancelFunc
	httpDone  chan error
	closeOnce sync.Once
	closeErr  error
}

var (
	_ EventLog = (*Embedded)(nil)
	// The HTTP API serves the node with all its features.
	_ api.Backend          = (*node.Node)(nil)
	_ api.OptionsPublisher = (*node.Node)(nil)
	_ api.ConsumerBackend  = (*node.Node)(nil)
)

// Open starts a node in dir (creating its key and database on first start)
// inside the process. The node keeps idempotency keys and consumer status;
// the SDK keeps aggregate snapshots in dir/sdk/snapshots.
// With WithHTTP the node also serves the HTTP Events API. Close it to stop
// the node.
func Open(dir string, opts ...Option) (*Embedded, error) {
	o := newOptions(opts)
	cfg := node.Config{Store: store.Config{DataDir: dir, Logger: o.logger}}
	if o.nodeConfig != nil {
		o.nodeConfig(&cfg)
	}
	n, err := node.Open(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("sdk: open %s: %w", dir, err)
	}
	sdkDir := ""
	if dir != "" && !cfg.Store.InMemory {
		sdkDir = filepath.Join(dir, "sdk")
	}
	snaps, err := defaultSnapshots(o, sdkDir)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("sdk: open %s: %w", dir, err)
	}
	e := &Embedded{n: n, appID: o.manifest.AppID, snaps: snaps}
	if o.httpAddr != "" {
		if err := e.serveHTTP(o); err != nil {
			n.Close()
			return nil, fmt.Errorf("sdk: open %s: %w", dir, err)
		}
	}
	return e, nil
}

func (e *Embedded) serveHTTP(o options) error {
	cfg := api.Config{Key: e.n.PrivateKey(), DevMode: true, Logger: o.logger}
	if o.apiConfig != nil {
		o.apiConfig(&cfg)
	}
	srv, err := api.New(e.n, cfg)
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", o.httpAddr)
	if err != nil {
		return fmt.Errorf("serving the API: %w", err)
	}
	e.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	e.stopHTTP, e.httpDone = cancel, make(chan error, 1)
	go func() { e.httpDone <- srv.Serve(ctx, ln) }()
	return nil
}

// URL returns the base URL of the HTTP Events API (like
// http://127.0.0.1:4454), or "" without WithHTTP.
func (e *Embedded) URL() string { return e.url }

// Node returns the node, for what the SDK does not cover.
func (e *Embedded) Node() *node.Node { return e.n }

// Snapshots returns the default store of aggregate snapshots, in
// dir/sdk/snapshots.
func (e *Embedded) Snapshots() SnapshotStore { return e.snaps }

// Close stops the HTTP API (if any) and the node. Subscriptions end.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		if e.stopHTTP != nil {
			e.stopHTTP()
			if err := <-e.httpDone; err != nil {
				e.closeErr = fmt.Errorf("sdk: close: %w", err)
			}
		}
		if err := e.n.Close(); err != nil && e.closeErr == nil {
			e.closeErr = fmt.Errorf("sdk: close: %w", err)
		}
	})
	return e.closeErr
}

// NodeID returns the node's ID.
func (e *Embedded) NodeID(context.Context) (string, error) { return e.n.NodeID(), nil }

// Offsets returns what the node holds.
func (e *Embedded) Offsets(ctx context.Context) (Offsets, error) {
	off, err := e.n.Offsets(ctx)
	if err != nil {
		return Offsets{}, fmt.Errorf("sdk: offsets: %w", err)
	}
	return off, nil
}

// Publish encodes the drafts' values with CBOR and stores them atomically.
func (e *Embedded) Publish(ctx context.Context, events ...Draft) ([]Meta, error) {
	return e.PublishWith(ctx, PublishOptions{}, events...)
}

// Query returns the selected events; see EventLog.
func (e *Embedded) Query(ctx context.Context, q Query, opts ...ReadOption) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		if err := q.Err(); err != nil {
			yield(Event{}, err)
			return
		}
		o := readOptions(opts)
		req := event.QueryRequest{Lower: o.lower, Upper: o.upper, Query: q.q, Order: o.order}
		for it, err := range e.n.Query(ctx, req) {
			if err != nil {
				yield(Event{}, fmt.Errorf("sdk: query: %w", err))
				return
			}
			if ev, ok, err := itemEvent(it); err != nil {
				yield(Event{}, fmt.Errorf("sdk: query: %w", err))
				return
			} else if ok && !yield(ev, nil) {
				return
			}
		}
		if err := ctx.Err(); err != nil {
			yield(Event{}, fmt.Errorf("sdk: query: %w", err))
		}
	}
}

// Subscribe returns the selected events, then live ones; see EventLog.
func (e *Embedded) Subscribe(ctx context.Context, q Query, opts ...ReadOption) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		o := readOptions(opts)
		if err := errors.Join(q.Err(), o.forSubscribe()); err != nil {
			yield(Event{}, err)
			return
		}
		for it, err := range e.n.Subscribe(ctx, event.SubscribeRequest{Lower: o.lower, Query: q.q}) {
			if err != nil {
				if ctx.Err() == nil {
					yield(Event{}, fmt.Errorf("sdk: subscribe: %w", err))
				}
				return
			}
			if ev, ok, err := itemEvent(it); err != nil {
				yield(Event{}, fmt.Errorf("sdk: subscribe: %w", err))
				return
			} else if ok && !yield(ev, nil) {
				return
			}
		}
	}
}

// SubscribeMonotonic returns the selected events in EventKey order; see
// EventLog.
func (e *Embedded) SubscribeMonotonic(ctx context.Context, q Query, opts ...ReadOption) iter.Seq2[Update, error] {
	return func(yield func(Update, error) bool) {
		o := readOptions(opts)
		if err := errors.Join(q.Err(), o.forSubscribe()); err != nil {
			yield(Update{}, err)
			return
		}
		lower := o.lower
		if lower == nil {
			lower = OffsetMap{}
		}
		req := event.MonotonicRequest{Session: "sdk", Lower: lower, Query: q.q}
		for it, err := range e.n.SubscribeMonotonic(ctx, req) {
			if err != nil {
				if ctx.Err() == nil {
					yield(Update{}, fmt.Errorf("sdk: subscribe monotonic: %w", err))
				}
				return
			}
			switch it.Kind {
			case event.KindEvent:
				ev := fromEvent(it.Event)
				if !yield(Update{Event: &ev, CaughtUp: it.CaughtUp}, nil) {
					return
				}
			case event.KindOffsets:
				if !yield(Update{CaughtUp: true, Offsets: it.Offsets}, nil) {
					return
				}
			case event.KindTimeTravel:
				yield(Update{}, &TimeTravelError{NewStart: it.NewStart})
				return
			case event.KindDiagnostic:
				if it.Severity == "error" {
					yield(Update{}, fmt.Errorf("sdk: subscribe monotonic: %w: %s", ErrUnavailable, it.Message))
					return
				}
			}
		}
	}
}

// itemEvent returns the event an item carries, if it carries one, or the
// error a diagnostic of severity error reports.
func itemEvent(it event.Item) (Event, bool, error) {
	switch it.Kind {
	case event.KindEvent:
		if it.Event != nil {
			return fromEvent(it.Event), true, nil
		}
	case event.KindDiagnostic:
		if it.Severity == "error" {
			return Event{}, false, fmt.Errorf("%w: %s", ErrUnavailable, it.Message)
		}
	}
	return Event{}, false, nil
}
