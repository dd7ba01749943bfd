package sdk_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/edgelog/edgelog/sdk"
	"github.com/edgelog/edgelog/sdk/sdktest"
)

// history is a state that records the order in which events were folded.
type history struct {
	Seqs []int `cbor:"1,keyasint"`
}

// historyAgg returns an aggregate over "tick" events folding tick.N into a
// history, and a counter of reducer calls.
func historyAgg(log sdk.EventLog, opts ...sdk.AggregateOption) (*sdk.Aggregate[history], *atomic.Int64) {
	calls := new(atomic.Int64)
	reduce := func(s history, ev sdk.Event) (history, error) {
		calls.Add(1)
		var v tick
		if err := ev.Decode(&v); err != nil {
			return s, err
		}
		s.Seqs = append(s.Seqs, v.N)
		return s, nil
	}
	return sdk.NewAggregate(log, "history", sdk.Where(sdk.Tag("tick")), history{}, reduce, opts...), calls
}

func publishTicks(t *testing.T, log sdk.EventLog, ns ...int) sdk.Meta {
	t.Helper()
	var ds []sdk.Draft
	for _, n := range ns {
		ds = append(ds, sdk.NewDraft(tick{n}, sdk.Tag("tick")))
	}
	metas, err := log.Publish(sdktest.Context(t), ds...)
	if err != nil {
		t.Fatal(err)
	}
	return metas[len(metas)-1]
}

func keyOf(m sdk.Meta) sdk.EventKey {
	return sdk.EventKey{Lamport: m.Lamport, Stream: string(m.Stream), Offset: m.Offset}
}

func wantState(t *testing.T, a *sdk.Aggregate[history], want []int, wantKey sdk.EventKey) {
	t.Helper()
	s, k, err := a.State(sdktest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Seqs, want) || k != wantKey {
		t.Fatalf("state %v at %v, want %v at %v", s.Seqs, k, want, wantKey)
	}
}

func TestAggregateSnapshots(t *testing.T) {
	e := openEmbedded(t)
	ctx := sdktest.Context(t)
	a, calls := historyAgg(e, sdk.SnapshotEvery(3))
	wantState(t, a, nil, sdk.EventKey{})
	publishTicks(t, e, 0, 1, 2)
	m := publishTicks(t, e, 3)
	if _, err := e.Publish(ctx, sdk.NewDraft(tick{99}, sdk.Tag("other"))); err != nil {
		t.Fatal(err)
	}
	wantState(t, a, []int{0, 1, 2, 3}, keyOf(m))
	m = publishTicks(t, e, 4)
	wantState(t, a, []int{0, 1, 2, 3, 4}, keyOf(m))
	if n := calls.Load(); n != 5 {
		t.Fatalf("reducer called %d times, want 5 (each event once)", n)
	}

	// A new aggregate (a restarted app) starts from the snapshot at 3.
	b, bcalls := historyAgg(e, sdk.SnapshotEvery(3))
	wantState(t, b, []int{0, 1, 2, 3, 4}, keyOf(m))
	if n := bcalls.Load(); n != 1 {
		t.Fatalf("from snapshot: reducer called %d times, want 1", n)
	}

	// A new reducer version ignores the old snapshots.
	c, ccalls := historyAgg(e, sdk.SnapshotEvery(3), sdk.Version(2))
	wantState(t, c, []int{0, 1, 2, 3, 4}, keyOf(m))
	if n := ccalls.Load(); n != 5 {
		t.Fatalf("new version: reducer called %d times, want 5", n)
	}
	if snap, ok, err := e.Snapshots().Latest(ctx, "history", 1, nil); err != nil || ok {
		t.Fatalf("version 1 snapshot %v still there after version 2 saved (%v)", snap.Key, err)
	}
}

// TestAggregateTimeTravel injects an event older than the state (as if it
// was replicated after a partition healed): the state is rebuilt from the
// latest snapshot before it.
func TestAggregateTimeTravel(t *testing.T) {
	log := sdktest.NewMemLog("12D3KooWLocal")
	store := sdk.NewMemSnapshotStore()
	a, calls := historyAgg(log, sdk.WithSnapshots(store), sdk.SnapshotEvery(1))
	peer := func(lamport, offset uint64, n int) sdk.Event {
		p, err := eventPayload(tick{n})
		if err != nil {
			t.Fatal(err)
		}
		return sdk.Event{Meta: sdk.Meta{Lamport: lamport, Stream: "12D3KooWPeer-0", Offset: offset}, Tags: []string{"tick"}, Payload: p}
	}
	log.Inject(peer(10, 0, 10))
	wantState(t, a, []int{10}, sdk.EventKey{Lamport: 10, Stream: "12D3KooWPeer-0"})
	other := func(lamport, offset uint64, n int) sdk.Event {
		ev := peer(lamport, offset, n)
		ev.Stream = "12D3KooWOther-0"
		return ev
	}
	log.Inject(peer(20, 1, 20))
	wantState(t, a, []int{10, 20}, sdk.EventKey{Lamport: 20, Stream: "12D3KooWPeer-0", Offset: 1})
	log.Inject(peer(30, 2, 30))
	last := sdk.EventKey{Lamport: 30, Stream: "12D3KooWPeer-0", Offset: 2}
	wantState(t, a, []int{10, 20, 30}, last)

	calls.Store(0)
	log.Inject(other(15, 0, 15))
	wantState(t, a, []int{10, 15, 20, 30}, last)
	if n := calls.Load(); n != 3 {
		t.Fatalf("rebuild folded %d events, want 3 (from the snapshot at 10)", n)
	}

	// Observe sees the same, then rebuilds after another time travel.
	ctx, cancel := context.WithCancel(sdktest.Context(t))
	defer cancel()
	states := make(chan []int, 16)
	go func() {
		for s, err := range a.Observe(ctx) {
			if err != nil {
				t.Error(err)
				return
			}
			states <- s.Seqs
		}
	}()
	if got := sdktest.Receive(t, states, 1)[0]; !slices.Equal(got, []int{10, 15, 20, 30}) {
		t.Fatalf("Observe first state %v", got)
	}
	third := peer(12, 0, 12)
	third.Stream = "12D3KooWThird-0"
	log.Inject(third)
	if got := sdktest.Receive(t, states, 1)[0]; !slices.Equal(got, []int{10, 12, 15, 20, 30}) {
		t.Fatalf("Observe after time travel: %v", got)
	}
	log.Inject(other(40, 1, 40))
	if got := sdktest.Receive(t, states, 1)[0]; !slices.Equal(got, []int{10, 12, 15, 20, 30, 40}) {
		t.Fatalf("Observe live: %v", got)
	}
}
