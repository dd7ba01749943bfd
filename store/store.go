package store

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// Store is a node's event store: its own streams and the copies of other
// nodes' streams it holds, their indexes, retention and bookkeeping, in one
// Badger database. All methods are safe for concurrent use.
type Store struct {
	cfg     Config
	log     *slog.Logger
	nodeID  string         // chain.NodeID of cfg.Key, computed once
	stream0 event.StreamID // the default stream
	st      *engine
	clock   *lamport.Clock
	w       *writer

	closeOnce sync.Once
	closing   chan struct{}
	ops       sync.WaitGroup // reads in flight; Close waits for them
	opsMu     sync.RWMutex   // held shared by enter, exclusively by Close
	closed    bool

	routing *routing   // routes and retention (prune.go)
	pruneMu sync.Mutex // one pruning batch at a time
	// drops and undropped: expired records still stored and the drops
	// that remove them (drop.go); compactMu keeps drops and Compact apart.
	drops      dropper
	undropped  atomic.Int64
	dropWaits  atomic.Uint64 // pruner passes a planned drop waited for reads
	compactMu  sync.Mutex
	pruneKick  chan struct{} // wakes the pruner
	prunerDone chan struct{}
}

// Open opens the store in cfg.DataDir, creating its database on first
// start, and starts its writer and pruner. Close it to release the
// database.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With(slog.String("component", "store"))
	st, clock, err := openEngine(cfg, log)
	if err != nil {
		return nil, err
	}
	// Read before the writer starts: from then on it owns st.total.
	events := st.total
	nodeID := chain.NodeID(cfg.Key.Public().(ed25519.PublicKey))
	n := &Store{
		cfg:     cfg,
		log:     log,
		nodeID:  nodeID,
		stream0: event.NewStreamID(nodeID, 0),
		st:      st,
		clock:   lamport.NewClock(clock),
		closing: make(chan struct{}),

		pruneKick:  make(chan struct{}, 1),
		prunerDone: make(chan struct{}),
	}
	n.w = newWriter(st, n.clock, cfg.Key, cfg, n.closing)
	n.w.settle = n.settle
	n.w.kick = n.kickPruner
	go n.w.run()
	if err := n.setupRouting(cfg); err != nil {
		n.Close()
		return nil, err
	}
	if st.readOnly == nil {
		go n.pruner()
	} else {
		close(n.prunerDone) // nothing to prune or reclaim: no writes
	}
	if every := cfg.Storage.TrimInterval; every > 0 && !cfg.InMemory {
		go n.trimmer(every)
	}
	log.Info("store opened", slog.String("dataDir", cfg.DataDir), slog.Any("durability", cfg.Durability),
		slog.Uint64("lamport", clock), slog.Uint64("events", events))
	return n, nil
}

// Close stops the store: publishes and reads still running fail with
// ErrUnavailable, subscriptions end, and the database is closed. Publishes
// acknowledged before Close are durable.
func (n *Store) Close() error {
	var err error
	n.closeOnce.Do(func() {
		close(n.closing)
		<-n.w.done
		if n.routing != nil {
			<-n.prunerDone
		}
		n.opsMu.Lock()
		n.closed = true
		n.opsMu.Unlock()
		n.ops.Wait()
		err = n.st.close()
		n.log.Info("store closed")
	})
	return err
}

// enter registers a read; the returned func ends it. It fails once Close began.
func (n *Store) enter() (func(), error) {
	n.opsMu.RLock()
	defer n.opsMu.RUnlock()
	if n.closed {
		return nil, fmt.Errorf("%w: node is closed", event.ErrUnavailable)
	}
	select {
	case <-n.closing:
		return nil, fmt.Errorf("%w: node is closing", event.ErrUnavailable)
	default:
	}
	n.ops.Add(1)
	return n.ops.Done, nil
}

// NodeID returns the ID of the node whose streams this store writes.
func (n *Store) NodeID() string { return n.nodeID }

// DefaultStream is the node's stream 0, where events go by default.
func (n *Store) DefaultStream() event.StreamID { return n.stream0 }

// Storage returns the storage settings in effect: Config.Storage with the
// profile's presets and the defaults filled in.
func (n *Store) Storage() Storage { return n.cfg.Storage }

// Lamport returns the current Lamport time.
func (n *Store) Lamport() uint64 { return n.clock.Now() }

// Offsets returns the offsets present here and every stream's statistics;
// ToReplicate is empty (replication fills it in).
func (n *Store) Offsets(ctx context.Context) (event.Offsets, error) {
	return event.Offsets{Present: n.st.snapshot().offsets(), ToReplicate: map[event.StreamID]uint64{}, Streams: n.StreamStats()}, nil
}

// Publish stores drafts as new events of the node's default stream, in one
// transaction: all are stored or none. It returns once they are durable (with
// DurabilitySync). Bad drafts fail with ErrInvalid, oversized ones with
// ErrTooLarge, a full disk with ErrStorageFull.
func (n *Store) Publish(ctx context.Context, appID string, drafts []event.Draft) ([]event.Meta, error) {
	return n.PublishWith(ctx, appID, drafts, event.PublishOptions{})
}

// PublishWith is Publish with options: an idempotency key and a guard (see
// event.PublishOptions). A known key returns the metas of its first publish
// (ErrIdempotencyMismatch if the events differ); a failed guard returns an
// error wrapping *event.ConflictError. Both are decided inside the writer,
// atomically with the write.
func (n *Store) PublishWith(ctx context.Context, appID string, drafts []event.Draft, opts event.PublishOptions) ([]event.Meta, error) {
	req, err := n.prepare(appID, drafts)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if req.book, err = newBook(appID, req, opts); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	n.route(req)
	if err := n.w.estimate(req); err != nil {
		return nil, err
	}
	return n.w.submit(ctx, req)
}

// prepare validates drafts against the limits and deduplicates their tags.
func (n *Store) prepare(appID string, drafts []event.Draft) (*writeReq, error) {
	lim := n.cfg.Limits
	switch {
	case appID == "":
		return nil, fmt.Errorf("%w: app id is empty", event.ErrInvalid)
	case len(appID) > 256:
		return nil, fmt.Errorf("%w: app id longer than 256 bytes", event.ErrInvalid)
	case len(drafts) == 0:
		return nil, fmt.Errorf("%w: no events to publish", event.ErrInvalid)
	case len(drafts) > lim.MaxEventsPerPublish:
		return nil, fmt.Errorf("%w: %d events in one publish, the limit is %d", event.ErrTooLarge, len(drafts), lim.MaxEventsPerPublish)
	}
	req := &writeReq{appID: appID, drafts: drafts, tags: make([][]string, len(drafts))}
	for i, d := range drafts {
		for _, t := range d.Tags {
			switch {
			case t == "":
				return nil, fmt.Errorf("%w: event %d has an empty tag", event.ErrInvalid, i)
			case len(t) > lim.MaxTagBytes:
				return nil, fmt.Errorf("%w: event %d has a tag of %d bytes, the limit is %d", event.ErrTooLarge, i, len(t), lim.MaxTagBytes)
			case slices.Contains([]byte(t), 0):
				return nil, fmt.Errorf("%w: event %d has a tag containing a NUL byte", event.ErrInvalid, i)
			}
		}
		tags := d.Tags
		if len(tags) > 1 {
			tags = slices.Clone(tags)
			slices.Sort(tags)
			tags = slices.Compact(tags)
		}
		if len(tags) > lim.MaxTagsPerEvent {
			return nil, fmt.Errorf("%w: event %d has %d tags, the limit is %d", event.ErrTooLarge, i, len(tags), lim.MaxTagsPerEvent)
		}
		req.tags[i] = tags
		switch {
		case len(d.Payload) == 0:
			return nil, fmt.Errorf("%w: event %d has no payload", event.ErrInvalid, i)
		case len(d.Payload) > lim.MaxPayloadBytes:
			return nil, fmt.Errorf("%w: event %d has a payload of %d bytes, the limit is %d", event.ErrTooLarge, i, len(d.Payload), lim.MaxPayloadBytes)
		}
		if err := event.CheckPayload(d.Payload); err != nil {
			return nil, fmt.Errorf("%w: event %d: payload is not one well-formed CBOR value within the limits: %v", event.ErrInvalid, i, err)
		}
	}
	return req, nil
}
