package sdk

import (
	"context"
	"iter"
	"log/slog"
	"net/http"
	"time"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/api/client"
	"github.com/edgelog/edgelog/node"
)

// EventLog is an edgelog node as an app sees it. *Embedded and *Remote
// implement it; every method is safe for concurrent use.
//
// Errors wrap ErrInvalid, ErrTooLarge, ErrStorageFull or ErrUnavailable
// where one applies. Sequences yield at most one error, after which they
// end; they end without an error when ctx ends or the caller stops.
type EventLog interface {
	// NodeID returns the ID of the node.
	NodeID(ctx context.Context) (string, error)
	// Offsets returns what the node holds and what it knows to exist on
	// peers.
	Offsets(ctx context.Context) (Offsets, error)
	// Publish stores events atomically in the given order in the node's
	// stream and returns where each now stands.
	Publish(ctx context.Context, events ...Draft) ([]Meta, error)
	// PublishWith is Publish with an idempotency key, a guard, or both
	// (see PublishOptions). A reused key returns the first publish's metas
	// (ErrIdempotencyMismatch if the events differ); a failed guard returns
	// a *ConflictError and publishes nothing.
	PublishWith(ctx context.Context, opts PublishOptions, events ...Draft) ([]Meta, error)
	// Query returns the events q selects that are present when it starts
	// (or within the bounds of After and UpTo), in ascending EventKey order
	// unless Descending or ByStream is given.
	Query(ctx context.Context, q Query, opts ...ReadOption) iter.Seq2[Event, error]
	// Subscribe returns the events q selects above After (all without it):
	// first those present, then new ones as they arrive, until ctx ends.
	// Within a stream events come in offset order; across streams in no
	// particular order. Only After applies.
	Subscribe(ctx context.Context, q Query, opts ...ReadOption) iter.Seq2[Event, error]
	// SubscribeMonotonic is Subscribe in ascending EventKey order. Each
	// Update is an event or a progress marker (see Update). When an event
	// older than one already delivered arrives, the sequence yields a
	// *TimeTravelError and ends. Only After applies.
	SubscribeMonotonic(ctx context.Context, q Query, opts ...ReadOption) iter.Seq2[Update, error]
}

// Update is one item of a monotonic subscription: an event, or (Event nil)
// a progress marker saying that every selected event up to Offsets has been
// delivered (sent once, after the events present at the start).
type Update struct {
	// Event is the next event, nil on a progress marker.
	Event *Event
	// CaughtUp is true when no further event is known right now (on the
	// last event of a burst, and on the progress marker).
	CaughtUp bool
	// Offsets is set on a progress marker.
	Offsets OffsetMap
}

// Manifest identifies an app to a node.
type Manifest = client.Manifest

// Option configures Open and Dial. Options that do not apply to one of them
// are ignored by it.
type Option func(*options)

type options struct {
	manifest   Manifest
	httpAddr   string
	apiConfig  func(*api.Config)
	nodeConfig func(*node.Config)
	logger     *slog.Logger
	snapshots  SnapshotStore
	dataDir    string
	backoffMin time.Duration
	backoffMax time.Duration
	httpClient *http.Client
}

func newOptions(opts []Option) options {
	o := options{
		manifest:   Manifest{AppID: "com.example.app", DisplayName: "edgelog SDK app", Version: "1.0"},
		backoffMin: 50 * time.Millisecond,
		backoffMax: 5 * time.Second,
	}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return o
}

// WithManifest sets the app's identity; Open publishes under its AppID.
// Dial takes the manifest as an argument instead.
func WithManifest(m Manifest) Option { return func(o *options) { o.manifest = m } }

// WithHTTP makes Open also serve the HTTP Events API on addr (such as
// "127.0.0.1:0" for any free port; see Embedded.URL). The API runs in dev
// mode (every com.example.* app gets a token) unless WithAPIConfig changes
// it.
func WithHTTP(addr string) Option { return func(o *options) { o.httpAddr = addr } }

// WithAPIConfig lets Open adjust the HTTP API's configuration (auth, limits)
// before it starts.
func WithAPIConfig(f func(*api.Config)) Option { return func(o *options) { o.apiConfig = f } }

// WithNodeConfig lets Open adjust the embedded node's configuration
// (durability, limits, storage, in-memory mode) before it starts.
func WithNodeConfig(f func(*node.Config)) Option { return func(o *options) { o.nodeConfig = f } }

// WithLogger sets the logger of the embedded node and of the SDK.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithSnapshotStore replaces the default store of aggregate snapshots (a
// FileSnapshotStore in the data directory).
func WithSnapshotStore(s SnapshotStore) Option { return func(o *options) { o.snapshots = s } }

// WithDataDir gives Dial a local directory for aggregate snapshots
// (dir/snapshots). Without it a Remote keeps them in memory only. Open uses
// its dir argument instead. (Idempotency keys and consumer status live on
// the node.)
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithReconnectBackoff sets how long a Remote's subscriptions wait before
// reconnecting: min after the first failure, doubling up to max (defaults
// 50ms and 5s).
func WithReconnectBackoff(min, max time.Duration) Option {
	return func(o *options) {
		if min > 0 {
			o.backoffMin = min
		}
		if max >= o.backoffMin {
			o.backoffMax = max
		}
	}
}

// WithHTTPClient makes Dial use hc for its requests. hc should have no
// overall Timeout, since subscriptions last indefinitely.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.httpClient = hc } }
