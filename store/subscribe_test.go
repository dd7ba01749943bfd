package store

import (
	"context"
	"errors"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

func drain(seq iter.Seq2[*event.Event, error]) ([]lamport.EventKey, error) {
	var out []lamport.EventKey
	for e, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, e.Key())
	}
	return out, nil
}

func TestSubscribeBacklogThenLiveNoGapNoDuplicate(t *testing.T) {
	n := openTest(t, t.TempDir())
	for range 100 {
		publish(t, n, "s")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const live = 400
	go func() {
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range live / 4 {
					tag := "s"
					if g == 0 {
						tag = "other"
					}
					if _, err := n.Publish(ctx, "com.example.t", []event.Draft{{Tags: []string{tag}, Payload: payload(t, 1)}}); err != nil && ctx.Err() == nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
	}()
	want := 100 + live*3/4
	seen := map[uint64]bool{}
	markers := 0
	var last uint64
	for it, err := range n.Subscribe(ctx, event.SubscribeRequest{Query: aql.MustParse("FROM 's'")}) {
		if err != nil {
			t.Fatal(err)
		}
		switch it.Kind {
		case event.KindOffsets:
			markers++
			if len(seen) < 100 {
				t.Fatalf("offsets marker after %d events, before the backlog of 100", len(seen))
			}
		case event.KindEvent:
			o := it.Event.Offset
			if seen[o] {
				t.Fatalf("offset %d delivered twice", o)
			}
			if len(seen) > 0 && o <= last {
				t.Fatalf("offset %d after %d", o, last)
			}
			seen[o], last = true, o
		}
		if len(seen) == want {
			break
		}
	}
	if markers != 1 {
		t.Fatalf("%d offsets markers, want 1", markers)
	}
}

func TestSubscribeMonotonicCaughtUpAndTimeTravel(t *testing.T) {
	n := openTest(t, t.TempDir())
	for range 3 {
		publish(t, n, "m")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var items []event.Item
	for it, err := range n.SubscribeMonotonic(ctx, event.MonotonicRequest{Session: "s1", Query: aql.MustParse("FROM 'm'")}) {
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
		switch {
		case it.Kind == event.KindOffsets:
			// Backlog done: a newer local event, then an older foreign one.
			publish(t, n, "m")
		case it.Kind == event.KindEvent && it.Event.Offset == 3 && it.Event.Stream == n.DefaultStream():
			putForeign(t, n, event.NewStreamID("12D3KooWpeer", 0), []event.Event{{Lamport: 1, Offset: 0, Tags: []string{"m"}, AppID: "x", Payload: payload(t, 0)}})
		}
	}
	// 3 backlog events (last caughtUp), offsets, live event, time travel.
	if len(items) != 6 {
		t.Fatalf("items: %+v", items)
	}
	for i, want := range []bool{false, false, true} {
		if items[i].Kind != event.KindEvent || items[i].CaughtUp != want {
			t.Fatalf("item %d: %+v, want caughtUp=%v", i, items[i], want)
		}
	}
	if items[3].Kind != event.KindOffsets || items[4].Kind != event.KindEvent || !items[4].CaughtUp {
		t.Fatalf("items 3,4: %+v %+v", items[3], items[4])
	}
	tt := items[5]
	if tt.Kind != event.KindTimeTravel || tt.NewStart != (lamport.EventKey{Lamport: 1, Stream: "12D3KooWpeer-0", Offset: 0}) {
		t.Fatalf("last item %+v, want time travel to the foreign event", tt)
	}
}

func TestCloseEndsSubscriptionsAndRefusesWork(t *testing.T) {
	n := openTest(t, t.TempDir())
	publish(t, n, "c")
	errc := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		var last error
		for it, err := range n.Subscribe(context.Background(), event.SubscribeRequest{Query: aql.MustParse("FROM 'c'")}) {
			if it.Kind == event.KindOffsets {
				close(started)
			}
			last = err
		}
		errc <- last
	}()
	<-started
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, event.ErrUnavailable) {
		t.Fatalf("subscription ended with %v, want ErrUnavailable", err)
	}
	if _, err := n.Publish(context.Background(), "a", []event.Draft{{Payload: payload(t, 1)}}); !errors.Is(err, event.ErrUnavailable) {
		t.Fatalf("publish after close: %v", err)
	}
	if _, _, err := collect(t, n.Query(context.Background(), event.QueryRequest{})); !errors.Is(err, event.ErrUnavailable) {
		t.Fatalf("query after close: %v", err)
	}
}
