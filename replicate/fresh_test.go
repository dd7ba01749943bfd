package replicate

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/edgelog/edgelog/chain"
)

func TestCollectFresh(t *testing.T) {
	ctx := context.Background()
	o, other := newOrigin(t), newOrigin(t)
	st := newMemStore()
	r := rand.New(rand.NewPCG(11, 11))
	st.Publish(t, r, o, 4)
	st.Publish(t, r, other, 2) // relayed: never fresh
	cur := NewFreshCursor(50*time.Millisecond, 50*time.Millisecond)
	t0 := time.Unix(1000, 0)
	collect := func(at time.Duration, maxEvents, maxBytes int) []FreshEvents {
		t.Helper()
		hs, _ := st.Heads(ctx)
		var heads []chain.SignedHead
		for _, h := range hs {
			heads = append(heads, h)
		}
		f, err := CollectFresh(ctx, st, o.ID.String(), heads, cur, t0.Add(at), maxEvents, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	span := func(f []FreshEvents) (first, last uint64, n int) {
		t.Helper()
		if len(f) != 1 || f[0].Head.Stream != o.Stream {
			t.Fatalf("fresh batches %+v, want one of %s", f, o.Stream)
		}
		evs := f[0].Events
		if evs[len(evs)-1].Offset != f[0].Head.Offset {
			t.Fatal("batch does not end at its head")
		}
		return evs[0].Offset, evs[len(evs)-1].Offset, len(evs)
	}
	// What existed before the first announce is not fresh.
	if f := collect(0, 256, 1<<20); len(f) != 0 {
		t.Fatalf("first announce carries %d batches", len(f))
	}
	st.Publish(t, r, o, 3) // offsets 4..6
	if a, b, _ := span(collect(time.Millisecond, 256, 1<<20)); a != 4 || b != 6 {
		t.Fatalf("fresh %d..%d, want 4..6", a, b)
	}
	// Within the repeat window, earlier fresh events ride along again.
	st.Publish(t, r, o, 2) // 7..8
	if a, b, _ := span(collect(2*time.Millisecond, 256, 1<<20)); a != 4 || b != 8 {
		t.Fatalf("fresh %d..%d, want 4..8 (repeated)", a, b)
	}
	// No change, within the window: the same events again.
	if a, b, _ := span(collect(10*time.Millisecond, 256, 1<<20)); a != 4 || b != 8 {
		t.Fatalf("heartbeat in the window: %d..%d, want 4..8", a, b)
	}
	// Past the window only newer events go.
	st.Publish(t, r, o, 1) // 9
	if a, b, _ := span(collect(100*time.Millisecond, 256, 1<<20)); a != 9 || b != 9 {
		t.Fatalf("fresh %d..%d, want 9..9", a, b)
	}
	if f := collect(500*time.Millisecond, 256, 1<<20); len(f) != 0 {
		t.Fatalf("nothing new, yet %d batches", len(f))
	}
	// Too many with the repeat: only what is new since the last announce.
	st.Publish(t, r, o, 3) // 10..12
	collect(501*time.Millisecond, 256, 1<<20)
	st.Publish(t, r, o, 2) // 13..14
	if a, b, _ := span(collect(502*time.Millisecond, 3, 1<<20)); a != 13 || b != 14 {
		t.Fatalf("bounded by count: %d..%d, want 13..14", a, b)
	}
	// Too many even then (by count or bytes): none; peers pull.
	st.Publish(t, r, o, 5)
	if f := collect(503*time.Millisecond, 4, 1<<20); len(f) != 0 {
		t.Fatal("a batch over the count limit was sent")
	}
	st.Publish(t, r, o, 1)
	if f := collect(504*time.Millisecond, 256, 10); len(f) != 0 {
		t.Fatal("a batch over the byte limit was sent")
	}
	// The cursor keeps only what a base can still need.
	if n := len(cur.hist[o.Stream]); n > 6 {
		t.Fatalf("cursor holds %d entries", n)
	}
}

// TestCollectFreshHeartbeat: an announce that shows a stream unchanged
// (a heartbeat) repeats the events of a longer window than one that shows
// it grown, and forgets them after it.
func TestCollectFreshHeartbeat(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t)
	st := newMemStore()
	r := rand.New(rand.NewPCG(12, 12))
	st.Publish(t, r, o, 4)
	const announce, heartbeat = 10 * time.Millisecond, 300 * time.Millisecond
	cur := NewFreshCursor(announce, heartbeat)
	t0 := time.Unix(1000, 0)
	collect := func(at time.Duration) (first, last uint64, n int) {
		t.Helper()
		hs, _ := st.Heads(ctx)
		f, err := CollectFresh(ctx, st, o.ID.String(), []chain.SignedHead{hs[o.Stream]}, cur, t0.Add(at), 1024, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(f) == 0 {
			return 0, 0, 0
		}
		evs := f[0].Events
		return evs[0].Offset, evs[len(evs)-1].Offset, len(evs)
	}
	collect(0)             // offsets 0..3 were there before: not fresh
	st.Publish(t, r, o, 3) // 4..6
	if a, b, _ := collect(time.Millisecond); a != 4 || b != 6 {
		t.Fatalf("announce: fresh %d..%d, want 4..6", a, b)
	}
	st.Publish(t, r, o, 1) // 7: grown, so the short window
	if a, b, _ := collect(200 * time.Millisecond); a != 7 || b != 7 {
		t.Fatalf("announce past the short window: fresh %d..%d, want 7..7", a, b)
	}
	if a, b, _ := collect(250 * time.Millisecond); a != 4 || b != 7 {
		t.Fatalf("heartbeat: fresh %d..%d, want 4..7 again", a, b)
	}
	if _, _, n := collect(700 * time.Millisecond); n != 0 {
		t.Fatalf("a heartbeat past its window repeats %d events", n)
	}
	// A steady stream of announces, one per millisecond: the cursor keeps
	// what a heartbeat needs, and not much more.
	for i := range 1000 {
		st.Publish(t, r, o, 1)
		at := time.Second + time.Duration(i)*time.Millisecond
		// The events of the last 10 ms (the short window) ride along.
		if a, b, _ := collect(at); b != uint64(8+i) || a != uint64(max(8, i-1)) {
			t.Fatalf("announce %d: fresh %d..%d, want %d..%d", i, a, b, max(8, i-1), 8+i)
		}
	}
	if n := len(cur.hist[o.Stream]); n < 300 || n > 2*300+2 {
		t.Fatalf("the cursor holds %d announces, want 300-602 (a heartbeat's worth, dropped in halves)", n)
	}
	// A heartbeat at 2 s repeats the events announced after 1.7 s.
	if a, b, _ := collect(2 * time.Second); a != 709 || b != 1007 {
		t.Fatalf("heartbeat after the steady stream: fresh %d..%d, want 709..1007", a, b)
	}
}
