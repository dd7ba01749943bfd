package replicate

import (
	"slices"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: time.Second, Max: 30 * time.Second, Jitter: 0.2}.WithDefaults()
	// Without jitter (r = 0.5), delays double up to the cap.
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := b.Delay(i+1, 0.5); got != w {
			t.Errorf("attempt %d: %v, want %v", i+1, got, w)
		}
	}
	if got := b.Delay(1000, 0.5); got != 30*time.Second {
		t.Errorf("attempt 1000: %v, want the cap", got)
	}
	// Jitter spreads ±20% and never passes the cap.
	if lo, hi := b.Delay(1, 0), b.Delay(1, 0.999999); lo != 800*time.Millisecond || hi < 1199*time.Millisecond || hi > 1200*time.Millisecond {
		t.Errorf("jittered first delay spans [%v, %v], want [800ms, 1.2s]", lo, hi)
	}
	if got := b.Delay(10, 0.999); got > b.Max {
		t.Errorf("jitter took the delay to %v, above the cap %v", got, b.Max)
	}
	if got := b.Delay(10, 0); got != 24*time.Second {
		t.Errorf("low jitter at the cap: %v, want 24s", got)
	}
	// Out-of-range inputs stay sane.
	if got := b.Delay(0, 0.5); got != time.Second {
		t.Errorf("attempt 0: %v", got)
	}
	if got := b.Delay(1, 7); got != 1200*time.Millisecond {
		t.Errorf("r clamped: %v", got)
	}
	if d := (Backoff{Base: time.Minute, Max: time.Second}).WithDefaults(); d.Max != time.Minute {
		t.Errorf("Max below Base not raised: %+v", d)
	}
	if d := (Backoff{Jitter: 3}).WithDefaults(); d.Jitter != DefaultRedialBackoff.Jitter {
		t.Errorf("jitter out of range kept: %+v", d)
	}
}

func TestRedials(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := NewRedials(Backoff{Base: time.Second, Max: 8 * time.Second, Jitter: 0.1})
	a, b, c := PeerID("a"), PeerID("b"), PeerID("c")
	r.Want(a, t0)
	r.Want(b, t0)
	r.Want(c, t0.Add(time.Hour))
	if _, ok := r.Next(); !ok {
		t.Fatal("no next due")
	}
	// Only the due ones, within the limit, in peer order.
	if got := r.Due(t0, 1); !slices.Equal(got, []PeerID{a}) {
		t.Fatalf("due with limit 1: %v", got)
	}
	// a is being dialled: it counts against the limit and is not due again.
	if got := r.Due(t0, 1); len(got) != 0 {
		t.Fatalf("due while a is dialled, limit 1: %v", got)
	}
	if got := r.Due(t0, 2); !slices.Equal(got, []PeerID{b}) {
		t.Fatalf("due with limit 2: %v", got)
	}
	// Failures back off exponentially (r=0.5: no jitter).
	now := t0
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		r.DialDone(a, false, now, 0.5)
		if r.Attempts(a) != i+1 {
			t.Fatalf("attempts %d, want %d", r.Attempts(a), i+1)
		}
		if got := r.Due(now.Add(want-time.Millisecond), 8); slices.Contains(got, a) {
			t.Fatalf("failure %d: a due before %v", i+1, want)
		}
		now = now.Add(want)
		if got := r.Due(now, 8); !slices.Contains(got, a) {
			t.Fatalf("failure %d: a not due after %v (%v)", i+1, want, got)
		}
	}
	// Success resets; a connected peer is never due.
	r.DialDone(a, true, now, 0.5)
	if r.Attempts(a) != 0 {
		t.Fatalf("attempts after success: %d", r.Attempts(a))
	}
	if got := r.Due(now.Add(time.Hour), 8); slices.Contains(got, a) {
		t.Fatal("connected peer due")
	}
	// Dropping: due again after the first delay, not at once.
	r.Disconnected(a, now, 0.5)
	if got := r.Due(now, 8); slices.Contains(got, a) {
		t.Fatal("due at once after a drop")
	}
	if next, ok := r.Next(); !ok || next.After(now.Add(time.Second)) {
		t.Fatalf("next due %v %v, want by %v", next, ok, now.Add(time.Second))
	}
	if got := r.Due(now.Add(time.Second), 8); !slices.Contains(got, a) {
		t.Fatal("not redialled a second after a drop")
	}
	// A peer that connected by itself while being dialled stays connected.
	r.Connected(a)
	r.DialDone(a, false, now, 0.5)
	if got := r.Due(now.Add(time.Hour), 8); slices.Contains(got, a) {
		t.Fatal("connected peer due after a failed parallel dial")
	}
	// Wanting a known peer keeps its state; forgetting removes it.
	r.DialDone(b, false, now, 0.5)
	r.Want(b, now)
	if r.Attempts(b) != 1 {
		t.Fatal("Want reset the backoff")
	}
	r.Forget(b)
	r.Forget(c)
	if got := r.Due(now.Add(time.Hour), 8); len(got) != 0 {
		t.Fatalf("forgotten peers due: %v", got)
	}
	if _, ok := r.Next(); ok {
		t.Fatal("next due with every target connected or forgotten")
	}
	// Events about unknown peers are ignored.
	r.DialDone("x", false, now, 0.5)
	r.Disconnected("x", now, 0.5)
	r.Connected("x")
}
