package replicate

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// pipeStore is a memStore with IngestAsync: a worker stores queued ranges
// in order. The first range is held back until a second one is queued (at
// most 5s), which a Fetch that waits for each range before reading on
// never does. failAt (1-based; 0 never) makes that range fail, and every
// range after a failure is refused with ErrStale, as the contract says.
type pipeStore struct {
	*memStore
	failAt  int
	errFail error

	mu         sync.Mutex
	queued     int
	second     chan struct{} // closed when the second range is queued
	overlapped bool
	failed     bool
}

func newPipeStore(failAt int) *pipeStore {
	return &pipeStore{memStore: newMemStore(), failAt: failAt, errFail: errors.New("disk on fire"), second: make(chan struct{})}
}

func (p *pipeStore) IngestAsync(ctx context.Context, events []event.Event, _ []chain.Block, head chain.SignedHead) (func() error, error) {
	p.mu.Lock()
	p.queued++
	n := p.queued
	if n == 2 {
		close(p.second)
	}
	p.mu.Unlock()
	res := make(chan error, 1)
	go func() {
		if n == 1 {
			select {
			case <-p.second:
				p.mu.Lock()
				p.overlapped = true
				p.mu.Unlock()
			case <-time.After(5 * time.Second):
			}
		}
		res <- p.store(n, events, head)
	}()
	// Ranges are stored in order: wait() of range n runs after n-1's in
	// the Fetch (one ack goroutine), and the worker of n may only store
	// after n-1 is stored; chain them.
	return func() error { return <-res }, nil
}

// store stores range n after ranges 1..n-1 (callers run them in order).
func (p *pipeStore) store(n int, events []event.Event, head chain.SignedHead) error {
	for {
		p.mu.Lock()
		done := p.memStore.Ingests() // ranges stored so far (memStore counts)
		failed := p.failed
		p.mu.Unlock()
		if failed || done >= n-1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed {
		return chain.ErrStale
	}
	if n == p.failAt {
		p.failed = true
		return p.errFail
	}
	return p.memStore.Put(events, head)
}

func pipePull(t *testing.T, src *memStore, dst *pipeStore, top int64, lim Limits) (int64, []uint64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := net.Pipe()
	go func() {
		Serve(ctx, src, a, lim)
		a.Close()
	}()
	var mu sync.Mutex
	var progress []uint64
	have, err := Fetch(ctx, dst, b, PullRequest{Stream: streamOf(src), From: -1, To: uint64(top)}, chain.Head{}, lim, func(off uint64) {
		mu.Lock()
		progress = append(progress, off)
		mu.Unlock()
	})
	b.Close()
	mu.Lock()
	defer mu.Unlock()
	return have, progress, err
}

func streamOf(m *memStore) event.StreamID {
	hs, _ := m.Heads(context.Background())
	for s := range hs {
		return s
	}
	return ""
}

func TestPipelinedPullOverlapsAndCopies(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(3, 3))
	src := newMemStore()
	for range 40 {
		src.Publish(t, r, o, 1+r.IntN(30))
	}
	_, top := src.Head(o.Stream)
	dst := newPipeStore(0)
	have, progress, err := pipePull(t, src, dst, top, Limits{FrameFillBytes: 2048})
	if err != nil || have != top {
		t.Fatalf("have %d of %d: %v", have, top, err)
	}
	if !reflect.DeepEqual(dst.Events(o.Stream), src.Events(o.Stream)) {
		t.Fatal("copy differs")
	}
	if !dst.overlapped {
		t.Fatal("the second range was queued only after the first was stored: no pipelining")
	}
	if len(progress) < 10 || progress[len(progress)-1] != uint64(top) {
		t.Fatalf("progress %v: want every stored range reported, ending at %d", progress, top)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i] <= progress[i-1] {
			t.Fatalf("progress not increasing: %v", progress)
		}
	}
}

func TestPipelinedPullStopsAtAFailedRange(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(4, 4))
	src := newMemStore()
	for range 40 {
		src.Publish(t, r, o, 1+r.IntN(30))
	}
	_, top := src.Head(o.Stream)
	dst := newPipeStore(4)
	have, progress, err := pipePull(t, src, dst, top, Limits{FrameFillBytes: 2048})
	if !errors.Is(err, dst.errFail) {
		t.Fatalf("err %v, want the store's error", err)
	}
	if Blame(err) == FaultMisbehaviour {
		t.Fatalf("a store failure blamed on the peer: %v", err)
	}
	held := dst.Events(o.Stream)
	if len(held) == 0 || have != int64(len(held))-1 {
		t.Fatalf("Fetch says %d stored, the store holds %d events", have, len(held))
	}
	if !reflect.DeepEqual(held, src.Events(o.Stream)[:len(held)]) {
		t.Fatal("stored prefix differs")
	}
	if dst.memStore.Ingests() != 3 || len(progress) != 3 || progress[2] != uint64(have) {
		t.Fatalf("%d ranges stored, progress %v: want the 3 before the failed one", dst.memStore.Ingests(), progress)
	}
}

func TestPipelinedPullRejectsAlteredEvents(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(5, 5))
	src := newMemStore()
	var batches [][]event.Event
	for range 30 {
		batches = append(batches, src.Publish(t, r, o, 1+r.IntN(30)))
	}
	_, top := src.Head(o.Stream)
	// A relay alters one event of batch 20.
	bad := batches[20][0].Offset
	src.Tamper(o.Stream, bad, func(ev *event.Event) { ev.Payload = append([]byte{0x01}, ev.Payload...) })
	dst := newPipeStore(0)
	have, _, err := pipePull(t, src, dst, top, Limits{FrameFillBytes: 2048})
	if !errors.Is(err, chain.ErrIntegrity) {
		t.Fatalf("err %v, want chain.ErrIntegrity", err)
	}
	held := dst.Events(o.Stream)
	if have >= int64(bad) || int64(len(held))-1 != have {
		t.Fatalf("stored up to %d (store holds %d events), the altered event is at %d", have, len(held), bad)
	}
	if !reflect.DeepEqual(held, src.Events(o.Stream)[:len(held)]) {
		t.Fatal("stored prefix differs")
	}
}
