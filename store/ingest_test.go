package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// signedRanges reads n's default stream as the ranges its signed heads
// close, as a pull receives them.
func signedRanges(t *testing.T, n *Store) ([][]event.Event, []chain.SignedHead) {
	t.Helper()
	var ranges [][]event.Event
	var heads []chain.SignedHead
	var cur []event.Event
	for en, err := range n.ReadRange(context.Background(), n.DefaultStream(), -1, math.MaxUint64) {
		if err != nil {
			t.Fatal(err)
		}
		cur = append(cur, en.Event)
		if en.Head != nil {
			ranges, heads, cur = append(ranges, cur), append(heads, *en.Head), nil
		}
	}
	if len(cur) != 0 {
		t.Fatalf("%d events after the last signed head", len(cur))
	}
	return ranges, heads
}

func readAll(t *testing.T, n *Store, s event.StreamID, from int64) []event.Event {
	t.Helper()
	var out []event.Event
	for en, err := range n.ReadRange(context.Background(), s, from, math.MaxUint64) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, en.Event)
	}
	return out
}

// TestIngestAsyncQueuesRanges: ranges queued one after another without
// waiting are all stored in order, interleaved with the node's own
// publishes, and ReadRange (one iterator, seeking past the other stream)
// reads each stream back exactly; a range that skips one is refused with
// ErrStale and stores nothing.
func TestIngestAsyncQueuesRanges(t *testing.T) {
	ctx := context.Background()
	a := openTest(t, t.TempDir())
	for i := range 12 {
		drafts := make([]event.Draft, 1+i%5)
		for j := range drafts {
			drafts[j] = event.Draft{Tags: []string{"a", fmt.Sprintf("n:%d", i)}, Payload: payload(t, map[string]int{"i": i, "j": j})}
		}
		if _, err := a.Publish(ctx, "com.example.a", drafts); err != nil {
			t.Fatal(err)
		}
	}
	ranges, heads := signedRanges(t, a)
	if len(ranges) != 12 {
		t.Fatalf("%d signed ranges, want 12", len(ranges))
	}
	b := openTest(t, t.TempDir())
	rs := b
	var waits []func() error
	for i := range ranges {
		// B's own events get Lamport times between A's.
		if _, err := b.Publish(ctx, "com.example.b", []event.Draft{{Tags: []string{"b"}, Payload: payload(t, i)}}); err != nil {
			t.Fatal(err)
		}
		if i == 9 {
			break // 9 ranges queued, then a gap
		}
		w, err := rs.IngestAsync(ctx, ranges[i], nil, heads[i])
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, w)
	}
	gap, err := rs.IngestAsync(ctx, ranges[10], nil, heads[10])
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range waits {
		if err := w(); err != nil {
			t.Fatalf("range %d: %v", i, err)
		}
	}
	if err := gap(); !errors.Is(err, chain.ErrStale) {
		t.Fatalf("a range above a gap: %v, want ErrStale", err)
	}
	var want []event.Event
	for _, r := range ranges[:9] {
		want = append(want, r...)
	}
	stream := a.DefaultStream()
	if got := readAll(t, b, stream, -1); !reflect.DeepEqual(got, want) {
		t.Fatalf("B holds %d events of A's stream, want %d (or they differ)", len(got), len(want))
	}
	if got := readAll(t, b, stream, 3); !reflect.DeepEqual(got, want[4:]) {
		t.Fatalf("from offset 3: %d events, want %d (or they differ)", len(got), len(want)-4)
	}
	if got := readAll(t, b, b.DefaultStream(), -1); len(got) != 10 {
		t.Fatalf("B's own stream reads %d events, want 10", len(got))
	}
	if h, _ := rs.Heads(ctx); h[stream].Head != heads[8].Head {
		t.Fatalf("B's head of A's stream %+v, want %+v", h[stream].Head, heads[8].Head)
	}
}

// ingest stores a verified range and waits until it is stored.
func ingest(ctx context.Context, s *Store, events []event.Event, head chain.SignedHead) error {
	wait, err := s.IngestAsync(ctx, events, nil, head)
	if err != nil {
		return err
	}
	return wait()
}
