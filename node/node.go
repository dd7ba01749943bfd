package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
	"github.com/edgelog/edgelog/replicate"
)

// Node is one edgelog node: its identity, its event store and the services
// that read and write it. All methods are safe for concurrent use.
type Node struct {
	cfg     Config
	log     *slog.Logger
	id      Identity
	nodeID  string         // id.ID as text, computed once
	stream0 event.StreamID // the default stream
	st      *store
	clock   *lamport.Clock
	w       *writer
	repl    *replicate.Service // nil when replication is off
	started time.Time

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
	compactMu  sync.Mutex
	pruneKick  chan struct{} // wakes the pruner
	prunerDone chan struct{}
}

// Open starts a node on cfg.DataDir, creating its key and database on first
// start. Close it to release the database.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With(slog.String("component", "node"))
	var id Identity
	if cfg.DataDir == "" {
		id, err = NewIdentity()
	} else {
		id, err = LoadIdentity(cfg.DataDir)
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, clock, err := openStore(cfg, log)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:     cfg,
		log:     log,
		id:      id,
		nodeID:  id.ID.String(),
		stream0: event.NewStreamID(id.ID.String(), 0),
		st:      st,
		clock:   lamport.NewClock(clock),
		started: time.Now(),
		closing: make(chan struct{}),

		pruneKick:  make(chan struct{}, 1),
		prunerDone: make(chan struct{}),
	}
	n.w = newWriter(st, n.clock, n.PrivateKey(), cfg, n.closing)
	n.w.settle = n.settle
	n.w.kick = n.kickPruner
	go n.w.run()
	if err := n.setupRouting(cfg); err != nil {
		n.Close()
		return nil, err
	}
	go n.pruner()
	if every := cfg.Storage.TrimInterval; every > 0 && !cfg.InMemory {
		go n.trimmer(every)
	}
	if cfg.Replication != nil {
		if err := n.startReplication(ctx, cfg.Replication); err != nil {
			n.Close()
			return nil, err
		}
	}
	log.Info("node started", slog.String("nodeId", id.ID.String()), slog.String("dataDir", cfg.DataDir),
		slog.Any("durability", cfg.Durability), slog.Uint64("lamport", clock), slog.Uint64("events", st.total))
	return n, nil
}

// Close stops the node: publishes and reads still running fail with
// ErrUnavailable, subscriptions end, and the database is closed. Publishes
// acknowledged before Close are durable.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		if n.repl != nil {
			if rerr := n.repl.Close(); rerr != nil {
				n.log.Warn("closing replication", slog.Any("err", rerr))
			}
		}
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
		n.log.Info("node stopped")
	})
	return err
}

// enter registers a read; the returned func ends it. It fails once Close began.
func (n *Node) enter() (func(), error) {
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

// NodeID returns the node's ID, the libp2p peer ID of its key.
func (n *Node) NodeID() string { return n.nodeID }

// Identity returns the node's key pair.
func (n *Node) Identity() Identity { return n.id }

// PrivateKey returns the node's Ed25519 key, for signing API tokens.
func (n *Node) PrivateKey() ed25519.PrivateKey {
	k, err := n.id.Ed25519()
	if err != nil {
		panic(err) // LoadIdentity only accepts Ed25519 keys
	}
	return k
}

// DefaultStream is the node's stream 0, where events go by default.
func (n *Node) DefaultStream() event.StreamID { return n.stream0 }

// Lamport returns the current Lamport time.
func (n *Node) Lamport() uint64 { return n.clock.Now() }

// Info describes the node.
func (n *Node) Info(ctx context.Context) (event.NodeInfo, error) {
	info := event.NodeInfo{Uptime: time.Since(n.started), Version: n.cfg.Version}
	if n.repl != nil {
		info.ConnectedNodes = len(n.repl.Host().Network().Peers())
		peers, err := n.peerInfo(ctx)
		if err != nil {
			return event.NodeInfo{}, fmt.Errorf("node info: %w", err)
		}
		info.Peers = peers
	}
	consumers, err := n.Consumers(ctx)
	if err != nil {
		return event.NodeInfo{}, fmt.Errorf("node info: %w", err)
	}
	info.Consumers = consumers
	info.Streams = n.streamStats()
	return info, nil
}

// Offsets returns the offsets present here and, per stream, how many events
// peers announced that are not here yet.
func (n *Node) Offsets(ctx context.Context) (event.Offsets, error) {
	out := event.Offsets{Present: n.st.snapshot().offsets(), ToReplicate: map[event.StreamID]uint64{}, Streams: n.streamStats()}
	if n.repl != nil {
		out.ToReplicate = n.repl.ToReplicate()
	}
	return out, nil
}

// Publish stores drafts as new events of the node's default stream, in one
// transaction: all are stored or none. It returns once they are durable (with
// DurabilitySync). Bad drafts fail with ErrInvalid, oversized ones with
// ErrTooLarge, a full disk with ErrStorageFull.
func (n *Node) Publish(ctx context.Context, appID string, drafts []event.Draft) ([]event.Meta, error) {
	return n.PublishWith(ctx, appID, drafts, event.PublishOptions{})
}

// PublishWith is Publish with options: an idempotency key and a guard (see
// event.PublishOptions). A known key returns the metas of its first publish
// (ErrIdempotencyMismatch if the events differ); a failed guard returns an
// error wrapping *event.ConflictError. Both are decided inside the writer,
// atomically with the write.
func (n *Node) PublishWith(ctx context.Context, appID string, drafts []event.Draft, opts event.PublishOptions) ([]event.Meta, error) {
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
func (n *Node) prepare(appID string, drafts []event.Draft) (*writeReq, error) {
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
		if err := cbor.Wellformed(d.Payload); err != nil {
			return nil, fmt.Errorf("%w: event %d: payload is not one well-formed CBOR value: %v", event.ErrInvalid, i, err)
		}
	}
	return req, nil
}
