package node

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
	"github.com/edgelog/edgelog/internal/eventtest"
	"github.com/edgelog/edgelog/internal/testnet"
	"github.com/edgelog/edgelog/lamport"
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

// replicating makes a node replicate in swarm, bootstrapped from the given
// addresses: over sim if it is set (inside a synctest bubble), else over
// loopback TCP.
func replicating(sim *testnet.Sim, swarm string, bootstrap ...string) func(*Config) {
	return func(c *Config) {
		c.Replication = &Replication{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: bootstrap, Swarm: swarm}
		if sim != nil {
			listen, opts := sim.Host()
			c.Replication.Listen, c.Replication.hostOptions = []string{listen}, opts
		}
	}
}

// openReplicating opens a replicating node in dir, in the test's swarm, on
// sim or loopback (see replicating).
func openReplicating(t *testing.T, sim *testnet.Sim, dir string, bootstrap ...string) *Node {
	t.Helper()
	return openTest(t, dir, replicating(sim, "test-"+t.Name(), bootstrap...))
}

// newSim is the simulated network the node tests use: 5 ms each way,
// 100 Mbit/s. Call it inside a synctest bubble.
func newSim(t testing.TB) *testnet.Sim {
	return testnet.NewSim(t, 5*time.Millisecond, 100<<20)
}

// awaitOffsets waits up to d until every node holds the same offsets,
// covering want events, and returns how long that took; on timeout it
// fails with each node's view, numbered by its place in nodes.
func awaitOffsets(t testing.TB, d time.Duration, want int, nodes ...*Node) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		offs := make([]event.OffsetMap, len(nodes))
		for k, n := range nodes {
			o, err := n.Offsets(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			offs[k] = o.Present
		}
		same := countOffsets(offs[0]) == want
		for _, o := range offs[1:] {
			same = same && maps.Equal(o, offs[0])
		}
		if same {
			return time.Since(start)
		}
		if time.Since(start) > d {
			var b strings.Builder
			for k, n := range nodes {
				o, _ := n.Offsets(context.Background())
				fmt.Fprintf(&b, "\n  node %d: %d events in %d streams, toReplicate %v, %d peers", k, countOffsets(o.Present), len(offs[k]), o.ToReplicate, len(n.repl.Host().Network().Peers()))
			}
			t.Fatalf("not converged on %d events after %v:%s", want, d, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countOffsets is the number of events the offsets cover.
func countOffsets(o event.OffsetMap) int {
	total := 0
	for _, v := range o {
		total += int(v) + 1
	}
	return total
}

// waitConverged waits up to a minute until every node holds the same
// offsets, covering want events, and returns the merged order each shows.
func waitConverged(t *testing.T, want int, nodes ...*Node) [][]lamport.EventKey {
	t.Helper()
	awaitOffsets(t, time.Minute, want, nodes...)
	var views [][]lamport.EventKey
	for _, n := range nodes {
		views = append(views, keys(query(t, n, event.QueryRequest{Query: aql.MustParse("FROM allEvents")})))
	}
	return views
}

// waitHolds waits until n holds stream up to offset last.
func waitHolds(b testing.TB, n *Node, stream event.StreamID, last uint64, d time.Duration) {
	b.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		changed := n.Changed()
		if o, err := n.Offsets(context.Background()); err == nil {
			if off, ok := o.Present[stream]; ok && off >= last {
				return
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			o, _ := n.Offsets(context.Background())
			b.Fatalf("after %v: holds %d of %s, toReplicate %d", d, o.Present[stream], stream, o.ToReplicate[stream])
		}
	}
}

// logRecorder is a slog.Handler keeping warnings and errors as text.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
	attrs []slog.Attr
	root  *logRecorder
}

func (l *logRecorder) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range l.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	root := l
	if l.root != nil {
		root = l.root
	}
	root.mu.Lock()
	root.lines = append(root.lines, b.String())
	root.mu.Unlock()
	return nil
}

func (l *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	root := l
	if l.root != nil {
		root = l.root
	}
	return &logRecorder{root: root, attrs: append(slices.Clone(l.attrs), as...)}
}

func (l *logRecorder) WithGroup(string) slog.Handler { return l }

// grep returns the recorded lines containing every one of words.
func (l *logRecorder) grep(words ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}
