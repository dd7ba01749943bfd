package node

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/edgelog/edgelog/expiry"
	"github.com/edgelog/edgelog/internal/eventtest"
	"github.com/edgelog/edgelog/internal/testnet"
	"github.com/edgelog/edgelog/store"
)

// The helpers shared with the store's tests (package eventtest).
var (
	payload      = eventtest.Payload
	publish      = eventtest.Publish
	publishN     = eventtest.PublishN
	collectItems = eventtest.CollectItems
	query        = eventtest.Query
	keys         = eventtest.Keys
	stats        = eventtest.Stats
	held         = eventtest.Held
)

// openTest opens a node in dir with small memtables and without fsyncs,
// closed when the test ends; mod adjust its configuration first.
func openTest(t testing.TB, dir string, mod ...func(*Config)) *Node {
	t.Helper()
	cfg := Config{Store: store.Config{DataDir: dir, Durability: store.DurabilityAsync,
		Storage: store.Storage{MemTableSize: 4 << 20, BlockCacheSize: 8 << 20, MinFreeBytes: 1}, Logger: slog.New(slog.DiscardHandler)}}
	for _, m := range mod {
		m(&cfg)
	}
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// withStreams configures routes and streams.
func withStreams(routes []expiry.Route, streams map[string]expiry.Retention) func(*Config) {
	return func(c *Config) {
		c.Store.Routes, c.Store.Streams = routes, streams
	}
}

// waitFor polls cond until it holds or 60 s pass.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	testnet.WaitFor(t, time.Minute, what, cond)
}
