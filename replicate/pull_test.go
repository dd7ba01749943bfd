package replicate

import (
	"bufio"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// pull runs Serve on src and Fetch into dst over an in-memory connection.
func pull(t *testing.T, src, dst *memStore, req PullRequest, lim Limits, wrap func(net.Conn) net.Conn) (int64, error, error) {
	t.Helper()
	prev, _ := dst.Head(req.Stream)
	return pipeFetch(t, func(ctx context.Context, c net.Conn) error {
		_, err := Serve(ctx, src, c, lim)
		return err
	}, dst, req, prev, lim, wrap)
}

// pipeFetch runs serve on one end of an in-memory connection (wrapped by
// wrap, if not nil) and Fetch into dst, chaining from prev, on the other.
// It returns Fetch's results and serve's error.
func pipeFetch(t *testing.T, serve func(context.Context, net.Conn) error, dst Store, req PullRequest, prev chain.Head, lim Limits, wrap func(net.Conn) net.Conn) (int64, error, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := net.Pipe()
	if wrap != nil {
		a = wrap(a)
	}
	served := make(chan error, 1)
	go func() {
		err := serve(ctx, a)
		a.Close()
		served <- err
	}()
	have, err := Fetch(ctx, dst, b, req, prev, lim, nil)
	b.Close()
	return have, err, <-served
}

func TestPullCopiesAStream(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(1, 1))
	src, dst := newMemStore(), newMemStore()
	for range 50 {
		src.Publish(t, r, o, 1+r.IntN(30))
	}
	_, top := src.Head(o.Stream)
	lim := Limits{FrameFillBytes: 2048}
	have, err, serr := pull(t, src, dst, PullRequest{Stream: o.Stream, From: -1, To: uint64(top)}, lim, nil)
	if err != nil || serr != nil || have != top {
		t.Fatalf("have %d of %d: %v / %v", have, top, err, serr)
	}
	if !reflect.DeepEqual(dst.Events(o.Stream), src.Events(o.Stream)) {
		t.Fatal("copy differs")
	}
	if dst.Ingests() < 10 {
		t.Fatalf("only %d ingests: verified pieces are not stored as they arrive", dst.Ingests())
	}
	if dst.Lamport() != src.Lamport() {
		t.Fatalf("lamport %d, want %d", dst.Lamport(), src.Lamport())
	}
	// Incremental pull from where dst is.
	src.Publish(t, r, o, 7)
	_, top = src.Head(o.Stream)
	_, mine := dst.Head(o.Stream)
	if have, err, _ := pull(t, src, dst, PullRequest{Stream: o.Stream, From: mine, To: uint64(top)}, lim, nil); err != nil || have != top {
		t.Fatalf("incremental: %d, %v", have, err)
	}
}

func TestPullExtendsToACheckpoint(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(2, 2))
	src, dst := newMemStore(), newMemStore()
	src.Publish(t, r, o, 10)
	have, err, _ := pull(t, src, dst, PullRequest{Stream: o.Stream, From: -1, To: 4}, Limits{}, nil)
	if err != nil || have != 9 {
		t.Fatalf("have %d, %v: want the batch up to its signed head at 9", have, err)
	}
}

// cutConn closes the connection after n bytes were read from it.
type cutConn struct {
	net.Conn
	left atomic.Int64
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.left.Add(-int64(len(p))) < 0 {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func TestPullResumesAfterInterruption(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(3, 3))
	src, dst := newMemStore(), newMemStore()
	for range 40 {
		src.Publish(t, r, o, 20)
	}
	_, top := src.Head(o.Stream)
	lim := Limits{FrameFillBytes: 1024}
	cut := func(c net.Conn) net.Conn { cc := &cutConn{Conn: c}; cc.left.Store(20000); return cc }
	have, err, _ := pull(t, src, dst, PullRequest{Stream: o.Stream, From: -1, To: uint64(top)}, lim, cut)
	if !errors.Is(err, ErrShortAnswer) || Blame(err) != FaultTransient {
		t.Fatalf("cut transfer: %v", err)
	}
	_, mine := dst.Head(o.Stream)
	if have <= 0 || have != mine || have >= top {
		t.Fatalf("stored %d (head %d) of %d", have, mine, top)
	}
	if have, err, _ = pull(t, src, dst, PullRequest{Stream: o.Stream, From: mine, To: uint64(top)}, lim, nil); err != nil || have != top {
		t.Fatalf("resume: %d, %v", have, err)
	}
	if !reflect.DeepEqual(dst.Events(o.Stream), src.Events(o.Stream)) {
		t.Fatal("copy differs")
	}
}

// lie answers one pull request with the given frames, whatever it asked.
func lie(t *testing.T, conn net.Conn, frames []Frame) {
	if _, err := ReadRequest(bufio.NewReader(conn)); err != nil {
		t.Error(err)
	}
	for _, f := range frames {
		if WriteFrame(conn, f) != nil {
			break
		}
	}
	conn.Close()
}

func TestPullRejectsALyingRelay(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(4, 4))
	honest := newMemStore()
	for range 5 {
		honest.Publish(t, r, o, 10)
	}
	all := honest.Events(o.Stream)
	h := func(off uint64) *chain.SignedHead { x, _ := honest.HeadAt(o.Stream, off); return &x }
	tests := []struct {
		name   string
		frames func(evs []event.Event) []Frame
		want   error
		stored int // events an honest prefix lets through
	}{
		{"altered payload", func(e []event.Event) []Frame {
			e[23].Payload = []byte{0xf6}
			return []Frame{{Events: e[:10], Head: h(9)}, {Events: e[10:], Head: h(49), End: true}}
		}, chain.ErrBrokenChain, 10},
		{"altered tags", func(e []event.Event) []Frame {
			e[0].Tags = append(e[0].Tags, "x")
			return []Frame{{Events: e, Head: h(49), End: true}}
		}, chain.ErrBrokenChain, 0},
		{"bad signature", func(e []event.Event) []Frame {
			bad := *h(49)
			bad.Sig = slices.Clone(bad.Sig)
			bad.Sig[0] ^= 1
			return []Frame{{Events: e, Head: &bad, End: true}}
		}, chain.ErrBadSignature, 0},
		{"forged head and events", func(e []event.Event) []Frame {
			e[40].Payload = []byte{0x01}
			forged := chain.Head{Stream: o.Stream, Offset: 49, Lamport: e[49].Lamport, Hash: chain.LinkAll(chain.Genesis, e)}
			return []Frame{{Events: e, Head: &chain.SignedHead{Head: forged, Sig: h(49).Sig}, End: true}}
		}, chain.ErrBadSignature, 0},
		{"dropped event", func(e []event.Event) []Frame {
			e = slices.Delete(e, 12, 13)
			for i := 12; i < len(e); i++ {
				e[i].Offset--
			}
			return []Frame{{Events: e[:10], Head: h(9)}, {Events: e[10:], Head: h(49), End: true}}
		}, chain.ErrGap, 10},
		{"swapped events", func(e []event.Event) []Frame {
			e[3], e[4] = e[4], e[3]
			return []Frame{{Events: e, Head: h(49), End: true}}
		}, chain.ErrGap, 0},
		{"another stream's events", func(e []event.Event) []Frame {
			other := newOrigin(t)
			oe := randomEvents(r, other.Stream, 0, 0, 5)
			oh := other.Sign(t, chain.Genesis, oe)
			return []Frame{{Events: oe, Head: &oh, End: true}}
		}, chain.ErrWrongStream, 0},
		{"unsigned tail", func(e []event.Event) []Frame {
			return []Frame{{Events: e[:10], Head: h(9)}, {Events: e[10:], End: true}}
		}, chain.ErrGap, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := slices.Clone(all)
			for i := range evs {
				evs[i].Tags = slices.Clone(evs[i].Tags)
			}
			frames := tt.frames(evs)
			a, b := net.Pipe()
			go lie(t, a, frames)
			dst := newMemStore()
			_, err := Fetch(context.Background(), dst, b, PullRequest{Stream: o.Stream, From: -1, To: 49}, chain.Head{}, Limits{}, nil)
			if !errors.Is(err, tt.want) || Blame(err) != FaultMisbehaviour {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			got := dst.Events(o.Stream)
			if len(got) != tt.stored || (len(got) > 0 && !reflect.DeepEqual(got, all[:len(got)])) {
				t.Fatalf("stored %d events, want the %d of the honest prefix", len(got), tt.stored)
			}
		})
	}
}

func TestPullShortAnswer(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(5, 5))
	src, dst := newMemStore(), newMemStore()
	src.Publish(t, r, o, 5)
	have, err, _ := pull(t, src, dst, PullRequest{Stream: o.Stream, From: -1, To: 20}, Limits{}, nil)
	if !errors.Is(err, ErrShortAnswer) || have != 4 {
		t.Fatalf("have %d, %v", have, err)
	}
	// A stream the peer does not hold at all.
	other := newOrigin(t)
	have, err, _ = pull(t, src, newMemStore(), PullRequest{Stream: other.Stream, From: -1, To: 3}, Limits{}, nil)
	if !errors.Is(err, ErrShortAnswer) || have != -1 {
		t.Fatalf("unknown stream: have %d, %v", have, err)
	}
}

func TestFreshRange(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(6, 6))
	src := newMemStore()
	src.Publish(t, r, o, 5)
	evs := src.Publish(t, r, o, 3)
	hs, _ := src.Heads(context.Background())
	f := FreshEvents{Head: hs[o.Stream], Events: evs}
	all := src.Events(o.Stream)
	prev := chain.Head{Hash: chain.LinkAll(chain.Genesis, all[:5])}
	got, err := FreshRange(prev, 4, f, chain.VerifyHead)
	if err != nil || len(got) != 3 {
		t.Fatalf("%d, %v", len(got), err)
	}
	prev6 := chain.Head{Hash: chain.LinkAll(chain.Genesis, all[:7])}
	if got, err := FreshRange(prev6, 6, f, chain.VerifyHead); err != nil || len(got) != 1 || got[0].Offset != 7 {
		t.Fatalf("overlap: %v, %v", got, err)
	}
	if got, err := FreshRange(chain.Head{}, 2, f, chain.VerifyHead); err != nil || got != nil {
		t.Fatalf("gap: %v, %v", got, err)
	}
	if got, err := FreshRange(prev6, 7, f, chain.VerifyHead); err != nil || got != nil {
		t.Fatalf("nothing new: %v, %v", got, err)
	}
	bad := f
	bad.Events = slices.Clone(evs)
	bad.Events[1].AppID = "evil"
	if _, err := FreshRange(prev, 4, bad, chain.VerifyHead); !errors.Is(err, chain.ErrBrokenChain) {
		t.Fatalf("tampered fresh: %v", err)
	}
	forged := f
	forged.Head.Sig = slices.Clone(f.Head.Sig)
	forged.Head.Sig[0] ^= 1
	if _, err := FreshRange(prev, 4, forged, chain.VerifyHead); !errors.Is(err, chain.ErrBadSignature) {
		t.Fatalf("forged head: %v", err)
	}
	// The head's signature is checked by the function given (the gossip
	// validator passes its cache of verified heads), once.
	var checked []chain.SignedHead
	check := func(h chain.SignedHead) error { checked = append(checked, h); return chain.VerifyHead(h) }
	if got, err := FreshRange(prev, 4, f, check); err != nil || len(got) != 3 || len(checked) != 1 || checked[0].Offset != f.Head.Offset {
		t.Fatalf("with a cache: %d events, %v, checked %v", len(got), err, checked)
	}
}
