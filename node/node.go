// Package node composes an edgelog node: its identity, its event store
// (package store) and, if configured, replication with peers (package
// replicate). The store's methods are the node's; the node adds what needs
// both, such as Info and the replication state in Offsets.
//
// Two test files run past 500 lines on purpose: cluster_test.go keeps the
// cluster harness (start, partition, heal, compare every node's view)
// beside the partition and lying-relay scenarios that need its internals,
// and replbench_test.go keeps BenchmarkCatchUp with the second process it
// starts and the /proc readings it reports.
package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/replicate/p2p"
	"github.com/edgelog/edgelog/store"
)

// Node is one edgelog node. All methods are safe for concurrent use.
type Node struct {
	*store.Store

	cfg     Config
	log     *slog.Logger
	id      Identity
	repl    *p2p.Service // nil when replication is off
	started time.Time

	closeOnce sync.Once
}

// Open starts a node on cfg.Store.DataDir, creating its key and database on
// first start. Close it to release the database.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var id Identity
	if cfg.Store.DataDir == "" {
		id, err = NewIdentity()
	} else {
		id, err = LoadIdentity(cfg.Store.DataDir)
	}
	if err != nil {
		return nil, err
	}
	if cfg.Store.Key, err = id.Ed25519(); err != nil {
		return nil, err
	}
	if cfg.Store.Logger == nil {
		cfg.Store.Logger = slog.Default()
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	n := &Node{
		Store:   st,
		cfg:     cfg,
		log:     cfg.Store.Logger.With(slog.String("component", "node")),
		id:      id,
		started: time.Now(),
	}
	if cfg.Replication != nil {
		if err := n.startReplication(ctx, cfg.Replication); err != nil {
			n.Close()
			return nil, err
		}
	}
	n.log.Info("node started", slog.String("nodeId", n.NodeID()), slog.String("dataDir", cfg.Store.DataDir))
	return n, nil
}

// Close stops replication, then the store: publishes and reads still
// running fail with ErrUnavailable, subscriptions end, and the database is
// closed. Publishes acknowledged before Close are durable.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		if n.repl != nil {
			if rerr := n.repl.Close(); rerr != nil {
				n.log.Warn("closing replication", slog.Any("err", rerr))
			}
		}
		err = n.Store.Close()
		n.log.Info("node stopped")
	})
	return err
}

// Identity returns the node's key pair.
func (n *Node) Identity() Identity { return n.id }

// PrivateKey returns the node's Ed25519 key, for signing API tokens.
func (n *Node) PrivateKey() ed25519.PrivateKey { return n.cfg.Store.Key }

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
	info.Streams = n.StreamStats()
	return info, nil
}

// Offsets returns the offsets present here and, per stream, how many events
// peers announced that are not here yet.
func (n *Node) Offsets(ctx context.Context) (event.Offsets, error) {
	out, err := n.Store.Offsets(ctx)
	if err != nil {
		return out, err
	}
	if n.repl != nil {
		out.ToReplicate = n.repl.ToReplicate()
	}
	return out, nil
}
