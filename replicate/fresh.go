package replicate

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// Fresh events: an announce carries the events of the sender's own streams
// committed since its previous announce, when they are few and small, so a
// direct peer stores them without a pull round trip. Receivers verify them
// exactly as a pull's answer (chain from the head they hold, signed head at
// the end) and fall back to a pull when they cannot (a gap, or too many to
// ride along).

// DefaultFreshBytes bounds the fresh events of one announce, in bytes.
const DefaultFreshBytes = 64 << 10

// DefaultFreshRepeat is how long events keep riding along in announces
// after they were first sent (see Config.FreshRepeat).
const DefaultFreshRepeat = 10 * time.Millisecond

// FreshCursor remembers, per own stream, the offsets announced lately and
// when. It belongs to the announce loop.
type FreshCursor struct {
	repeat time.Duration // window of an announce that shows a stream grown
	keep   time.Duration // window of one that shows it unchanged
	hist   map[event.StreamID][]sent
}

type sent struct {
	at  time.Time
	off uint64
}

// NewFreshCursor returns a cursor whose announces repeat a grown stream's
// events of the last repeat, and an unchanged stream's of the last keep
// (at least repeat).
func NewFreshCursor(repeat, keep time.Duration) *FreshCursor {
	return &FreshCursor{repeat: repeat, keep: max(keep, repeat), hist: map[event.StreamID][]sent{}}
}

// bases returns the offsets above which an announce at now of a stream at
// head should carry its events: base, the head announced at least a window
// ago, and last, the head announced last. known is false for a stream not
// announced before.
//
// The window is repeat where the stream grew since the last announce: an
// event rides along in every announce for repeat, and a receiver whose
// validator delivered a later announce first still gets it. Where it did
// not grow (a heartbeat, or the announce to a peer that joined), the
// window is keep: receivers get announces in the order their validation
// ends, and one that carries no events is quicker to validate than the one
// before it that did, so without them it would overtake it and make the
// receiver pull what is on its way.
func (c *FreshCursor) Bases(s event.StreamID, now time.Time, head uint64) (base, last uint64, known bool) {
	h := c.hist[s]
	if len(h) == 0 {
		return 0, 0, false
	}
	last = h[len(h)-1].off
	window := c.repeat
	if head == last {
		window = c.keep
	}
	// h is in time order: the entries at least window old come first.
	old := sort.Search(len(h), func(i int) bool { return now.Sub(h[i].at) < window })
	return h[max(old-1, 0)].off, last, true
}

// announced records that the head of s at now is off, forgetting what no
// later base can need.
func (c *FreshCursor) Announced(s event.StreamID, off uint64, now time.Time) {
	h := c.hist[s]
	if n := len(h); n > 0 && h[n-1].off == off {
		return
	}
	h = append(h, sent{at: now, off: off})
	// Keep the newest entry at least keep old, and all newer ones; bases
	// never looks past it. Under a steady stream of announces h holds a
	// heartbeat's worth of them, so drop the older ones only once they are
	// half of h: copying h on every announce would cost more than bases.
	from := sort.Search(len(h), func(i int) bool { return now.Sub(h[i].at) < c.keep }) - 1
	if from > 0 && from >= len(h)/2 {
		h = append(h[:0], h[from:]...)
	}
	c.hist[s] = h
}

// CollectFresh returns the fresh batches for an announce of heads at now:
// for each own stream that grew lately, its events above the cursor's base
// (or, if those are too many, above the last announce), if together with
// the others they stay within maxEvents and maxBytes; else the stream is
// only announced and peers pull. It advances the cursor. A stream seen for
// the first time sends nothing: its earlier events are not fresh.
func CollectFresh(ctx context.Context, st Store, self string, heads []chain.SignedHead, cur *FreshCursor, now time.Time, maxEvents, maxBytes int) ([]FreshEvents, error) {
	var out []FreshEvents
	nEvents, nBytes := 0, 0
	for _, h := range heads {
		if h.Stream.Node() != self {
			continue
		}
		base, last, known := cur.Bases(h.Stream, now, h.Offset)
		cur.Announced(h.Stream, h.Offset, now)
		if !known || h.Offset <= base {
			continue
		}
		for _, from := range []uint64{base, last} {
			if h.Offset <= from || int(h.Offset-from) > maxEvents-nEvents {
				continue
			}
			evs, size, err := readFresh(ctx, st, h, from, maxBytes-nBytes)
			if err != nil {
				return out, err
			}
			if evs == nil {
				continue
			}
			nEvents += len(evs)
			nBytes += size
			out = append(out, FreshEvents{Head: h, Events: evs})
			break
		}
	}
	return out, nil
}

// readFresh reads h.Stream's events in (from, h.Offset], or nil if they
// take more than maxBytes or are not all there.
func readFresh(ctx context.Context, st Store, h chain.SignedHead, from uint64, maxBytes int) ([]event.Event, int, error) {
	var evs []event.Event
	size := 0
	for en, err := range st.ReadRange(ctx, h.Stream, int64(from), h.Offset) {
		if err != nil {
			return nil, 0, fmt.Errorf("fresh events of %s: %w", h.Stream, err)
		}
		if size += chain.EventSize(&en.Event); size > maxBytes {
			return nil, 0, nil
		}
		evs = append(evs, en.Event)
	}
	if len(evs) == 0 || evs[len(evs)-1].Offset != h.Offset {
		return nil, 0, nil
	}
	return evs, size, nil
}

// CheckedFresh is the gossip validator's verdict on one fresh batch.
type CheckedFresh struct {
	OK     bool          // verified against the head at Have
	Have   int64         // the offset held when verified
	Prev   chain.Hash    // the chain hash there
	Events []event.Event // the events above Have, verified
}

// CheckFresh verifies fresh batches against the heads the store holds now,
// as a pull's answer would be: an error (wrapping ErrIntegrity) means a
// batch is forged. Batches that do not connect to what is held are checked
// for form and signature only (ok false).
func CheckFresh(heads map[event.StreamID]chain.SignedHead, fresh []FreshEvents, checkSig func(chain.SignedHead) error) ([]CheckedFresh, error) {
	out := make([]CheckedFresh, len(fresh))
	for i, f := range fresh {
		prev, have := chain.Head{}, int64(-1)
		if h, ok := heads[f.Head.Stream]; ok {
			prev, have = h.Head, int64(h.Offset)
		}
		evs, err := FreshRange(prev, have, f, checkSig)
		if err != nil {
			return nil, err
		}
		if evs != nil {
			out[i] = CheckedFresh{OK: true, Have: have, Prev: prev.Hash, Events: evs}
			continue
		}
		// Not verifiable against what is held: check that the batch at
		// least hangs together and ends at its signed head.
		if err := checkSig(f.Head); err != nil {
			return nil, err
		}
		v := chain.NewVerifier(f.Head.Stream, int64(f.Events[0].Offset)-1, 0, chain.Genesis)
		if err := v.Add(f.Events); err != nil {
			return nil, err
		}
		if last := f.Events[len(f.Events)-1]; last.Offset != f.Head.Offset || last.Lamport != f.Head.Lamport {
			return nil, fmt.Errorf("%w: fresh events of %s end at %d, their head at %d", chain.ErrGap, f.Head.Stream, last.Offset, f.Head.Offset)
		}
	}
	return out, nil
}
