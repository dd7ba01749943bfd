package sdk_test

import (
	"fmt"
	"testing"

	"github.com/edgelog/edgelog/node"
	"github.com/edgelog/edgelog/sdk"
	"github.com/edgelog/edgelog/sdk/sdktest"
	"github.com/edgelog/edgelog/store"
)

func asyncNode(c *node.Config) { c.Store.Durability = store.DurabilityAsync }

func fill(b *testing.B, log sdk.EventLog, n int) {
	b.Helper()
	const batch = 5000
	for i := 0; i < n; i += batch {
		ds := make([]sdk.Draft, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			ds = append(ds, sdk.NewDraft(tick{j}, sdk.Tag("tick")))
		}
		if _, err := log.Publish(b.Context(), ds...); err != nil {
			b.Fatal(err)
		}
	}
}

// counter is a cheap aggregate: the sum of tick.N.
func counter(log sdk.EventLog, opts ...sdk.AggregateOption) *sdk.Aggregate[int] {
	return sdk.NewAggregate(log, "sum", sdk.Where(sdk.Tag("tick")), 0, func(s int, ev sdk.Event) (int, error) {
		var v tick
		err := ev.Decode(&v)
		return s + v.N, err
	}, opts...)
}

// BenchmarkAggregateState compares a state folded from 100k events with one
// loaded from a snapshot (plus the events after it: none).
func BenchmarkAggregateState(b *testing.B) {
	const n = 100_000
	e := openEmbedded(b, sdk.WithNodeConfig(asyncNode))
	fill(b, e, n)
	want := n * (n - 1) / 2
	check := func(a *sdk.Aggregate[int]) {
		s, _, err := a.State(b.Context())
		if err != nil || s != want {
			b.Fatalf("state %d, %v; want %d", s, err, want)
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			check(counter(e, sdk.WithSnapshots(nil)))
		}
	})
	store := sdk.NewMemSnapshotStore()
	check(counter(e, sdk.WithSnapshots(store), sdk.SnapshotEvery(1)))
	b.Run("snapshot", func(b *testing.B) {
		for b.Loop() {
			check(counter(e, sdk.WithSnapshots(store)))
		}
	})
	files, err := sdk.NewFileSnapshotStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	check(counter(e, sdk.WithSnapshots(files), sdk.SnapshotEvery(1)))
	b.Run("snapshot-file", func(b *testing.B) {
		for b.Loop() {
			check(counter(e, sdk.WithSnapshots(files)))
		}
	})
}

func benchLogs(b *testing.B) map[string]sdk.EventLog {
	e := openEmbedded(b, sdk.WithNodeConfig(asyncNode), sdk.WithHTTP("127.0.0.1:0"))
	return map[string]sdk.EventLog{"embedded": e, "remote": dial(b, e.URL())}
}

// BenchmarkPublish publishes one event per operation.
func BenchmarkPublish(b *testing.B) {
	for name, log := range benchLogs(b) {
		b.Run(name, func(b *testing.B) {
			d := sdk.NewDraft(tick{1}, sdk.Tag("tick"), sdk.Tag("machine").WithID("7"))
			for b.Loop() {
				if _, err := log.Publish(b.Context(), d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPublishWith publishes one event per operation with an
// idempotency key (a new one each time) or a guard (that holds), to compare
// with BenchmarkPublish.
func BenchmarkPublishWith(b *testing.B) {
	runs := 0
	for name, log := range benchLogs(b) {
		b.Run(name+"/idempotent", func(b *testing.B) {
			runs++ // fresh keys per run: every publish writes
			prefix := fmt.Sprint(name, runs, "-")
			d := sdk.NewDraft(tick{1}, sdk.Tag("tick"))
			i := 0
			for b.Loop() {
				i++
				if _, err := log.PublishWith(b.Context(), sdk.PublishOptions{IdempotencyKey: fmt.Sprint(prefix, i)}, d); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/guarded", func(b *testing.B) {
			runs++ // a fresh entity per run, so the zero key starts it
			id := fmt.Sprint(name, runs)
			q := sdk.Where(sdk.Tag("order").WithID(id))
			d := sdk.NewDraft(tick{1}, sdk.Tag("order").WithID(id))
			var since sdk.EventKey
			for b.Loop() {
				m, err := log.PublishWith(b.Context(), sdk.PublishOptions{Guard: &sdk.Guard{Query: q, Since: since}}, d)
				if err != nil {
					b.Fatal(err)
				}
				since = sdk.EventKey{Lamport: m[0].Lamport, Stream: string(m[0].Stream), Offset: m[0].Offset}
			}
		})
	}
}

// BenchmarkQuery reads 1000 events per operation.
func BenchmarkQuery(b *testing.B) {
	logs := benchLogs(b)
	fill(b, logs["embedded"], 1000) // the remote reads the same node
	for name, log := range logs {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if n := len(sdktest.Collect(b, log.Query(b.Context(), sdk.Where(sdk.Tag("tick"))))); n != 1000 {
					b.Fatalf("%d events", n)
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// TestSnapshotSpeedup checks, by counting reducer calls rather than timing
// (BenchmarkAggregateState measures time), that a state over 100k events is
// rebuilt from its snapshot without folding the events again.
func TestSnapshotSpeedup(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 100k events")
	}
	const n = 100_000
	e := openEmbedded(t, sdk.WithNodeConfig(asyncNode))
	var ds []sdk.Draft
	for i := range n {
		ds = append(ds, sdk.NewDraft(tick{i}, sdk.Tag("tick")))
		if len(ds) == 5000 {
			if _, err := e.Publish(t.Context(), ds...); err != nil {
				t.Fatal(err)
			}
			ds = ds[:0]
		}
	}
	store := sdk.NewMemSnapshotStore()
	calls := 0
	agg := func(opts ...sdk.AggregateOption) *sdk.Aggregate[int] {
		return sdk.NewAggregate(e, "sum", sdk.Where(sdk.Tag("tick")), 0, func(s int, ev sdk.Event) (int, error) {
			calls++
			var v tick
			err := ev.Decode(&v)
			return s + v.N, err
		}, opts...)
	}
	state := func(a *sdk.Aggregate[int]) {
		if s, _, err := a.State(t.Context()); err != nil || s != n*(n-1)/2 {
			t.Fatalf("state %d, %v", s, err)
		}
	}
	state(agg(sdk.WithSnapshots(store), sdk.SnapshotEvery(1)))
	if calls != n {
		t.Fatalf("cold state folded %d events, want %d", calls, n)
	}
	calls = 0
	state(agg(sdk.WithSnapshots(store)))
	if calls != 0 {
		t.Fatalf("state from a snapshot folded %d events again, want 0", calls)
	}
}
