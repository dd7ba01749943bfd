package replicate

import (
	"testing"
	"time"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

func TestPacer(t *testing.T) {
	const (
		self  = "me"
		gap   = time.Millisecond
		relay = 25 * time.Millisecond
	)
	own, other := event.StreamID(self+"-0"), event.StreamID("them-0")
	heads := func(ownOff, otherOff uint64) map[event.StreamID]chain.SignedHead {
		return map[event.StreamID]chain.SignedHead{
			own:   {Head: chain.Head{Stream: own, Offset: ownOff}},
			other: {Head: chain.Head{Stream: other, Offset: otherOff}},
		}
	}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	p := NewPacer(self, gap, relay)
	if at := p.Due(heads(0, 0), false); !at.IsZero() {
		t.Fatalf("first announce due at %v, want at once", at)
	}
	p.Sent(t0, heads(0, 0), 100)

	// Only a relayed stream changed: wait for the relay gap.
	if at := p.Due(heads(0, 1), false); !at.Equal(t0.Add(relay)) {
		t.Fatalf("relayed change due at +%v, want +%v", at.Sub(t0), relay)
	}
	// A heartbeat or a join, or an own stream that changed, does not.
	for _, c := range []struct {
		name   string
		heads  map[event.StreamID]chain.SignedHead
		urgent bool
	}{
		{"urgent", heads(0, 1), true},
		{"own changed", heads(1, 0), false},
		{"own stream new", map[event.StreamID]chain.SignedHead{self + "-1": {Head: chain.Head{Stream: self + "-1"}}}, false},
	} {
		if at := p.Due(c.heads, c.urgent); at.After(t0) {
			t.Fatalf("%s: due at +%v, want at once", c.name, at.Sub(t0))
		}
	}

	// A burst of announceBurst goes out at once; then one per gap.
	for i := 1; i < announceBurst; i++ {
		if at := p.Due(heads(uint64(i), 0), false); at.After(t0) {
			t.Fatalf("announce %d of a burst due at +%v", i+1, at.Sub(t0))
		}
		p.Sent(t0, heads(uint64(i), 0), 100)
	}
	if at := p.Due(heads(announceBurst, 0), false); !at.Equal(t0.Add(gap)) {
		t.Fatalf("after a burst: due at +%v, want +%v", at.Sub(t0), gap)
	}
	now := t0
	for i := range 10 {
		now = now.Add(gap)
		if at := p.Due(heads(uint64(announceBurst+i), 0), false); at.After(now) {
			t.Fatalf("steady rate: announce %d due at +%v, after +%v", i, at.Sub(t0), now.Sub(t0))
		}
		p.Sent(now, heads(uint64(announceBurst+i), 0), 100)
	}
	if at := p.Due(heads(99, 0), false); !at.Equal(now.Add(gap)) {
		t.Fatalf("steady rate: due at +%v, want +%v", at.Sub(t0), now.Add(gap).Sub(t0))
	}

	// A quiet spell refills the burst, but not beyond it.
	now = now.Add(time.Minute)
	for i := range announceBurst {
		if at := p.Due(heads(uint64(100+i), 0), false); at.After(now) {
			t.Fatalf("after a quiet spell: announce %d due at %v after now", i, at.Sub(now))
		}
		p.Sent(now, heads(uint64(100+i), 0), 100)
	}
	if at := p.Due(heads(200, 0), false); !at.After(now) {
		t.Fatal("after a quiet spell: more than a burst at once")
	}

	// A large announce stretches the gap to keep under announceBytesPerSec.
	now = now.Add(time.Minute)
	p.Sent(now, heads(300, 0), announceBytesPerSec/2)
	want := now.Add(time.Second/2 - (announceBurst-1)*gap)
	if at := p.Due(heads(301, 0), false); !at.Equal(want) {
		t.Fatalf("after a large announce: due at +%v, want +%v", at.Sub(now), want.Sub(now))
	}
}
