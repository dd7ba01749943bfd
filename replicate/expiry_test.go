package replicate

import (
	"bufio"
	"context"
	"errors"
	"iter"
	"math/rand/v2"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

func TestPlannerRespectsFloors(t *testing.T) {
	s := newScript(t, PlannerConfig{})
	s.announce("B", "a-0:999", "b-0:10")
	s.p.PeerFloors(PeerID("B"), []expiry.StreamExpiry{{Stream: "a-0", Floor: 900}})
	// Only what exists above the floor is to replicate, and the pull
	// starts at the floor.
	s.toReplicate(map[event.StreamID]uint64{"a-0": 100, "b-0": 11})
	s.next("start #1 B a-0 (899,999]", "start #2 B b-0 (-1,10]")
	// Holding more than the floor, the pull starts where we are.
	s.stored("a-0", 999)
	s.done(1, nil)
	s.announce("B", "a-0:1999", "b-0:10")
	s.toReplicate(map[event.StreamID]uint64{"a-0": 1000, "b-0": 11})
	s.next("start #3 B a-0 (999,1999]")
	// A holder whose floor is higher counts only what it holds; the
	// lowest floor among holders decides what exists.
	s.p.PeerFloors(PeerID("B"), []expiry.StreamExpiry{{Stream: "a-0", Floor: 1500}})
	s.toReplicate(map[event.StreamID]uint64{"a-0": 500, "b-0": 11})
	s.announce("C", "a-0:1999")
	s.toReplicate(map[event.StreamID]uint64{"a-0": 1000, "b-0": 11})
	s.gone("C")
	s.gone("B")
	s.toReplicate(map[event.StreamID]uint64{})
}

// floorSrc is a memStore whose stream expired below floor: it serves from
// there, with the head at floor-1 (as the node does).
type floorSrc struct {
	*memStore
	floor chain.Head
}

func (f *floorSrc) ReadRange(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
	return func(yield func(chain.Entry, error) bool) {
		if stream == f.floor.Stream && from < int64(f.floor.Offset) {
			if !yield(chain.Entry{Floor: &f.floor}, nil) {
				return
			}
			from = int64(f.floor.Offset)
		}
		for en, err := range f.memStore.ReadRange(ctx, stream, from, to) {
			if !yield(en, err) {
				return
			}
		}
	}
}

// skipDst is a Store that holds one stream from wherever SkipTo put it;
// the memStore it embeds serves nothing.
type skipDst struct {
	*memStore
	mu      sync.Mutex
	skipped *chain.Head
	events  []event.Event
	refuse  bool
}

func (d *skipDst) Heads(context.Context) (map[event.StreamID]chain.SignedHead, error) {
	return nil, nil
}
func (d *skipDst) Changed() <-chan struct{} { return nil }
func (d *skipDst) ReadRange(context.Context, event.StreamID, int64, uint64) iter.Seq2[chain.Entry, error] {
	return func(func(chain.Entry, error) bool) {}
}

func (d *skipDst) IngestAsync(_ context.Context, events []event.Event, _ []chain.Block, _ chain.SignedHead) (func() error, error) {
	err := d.ingest(events)
	return func() error { return err }, nil
}

func (d *skipDst) ingest(events []event.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := uint64(0)
	if d.skipped != nil {
		next = d.skipped.Offset + 1
	}
	next += uint64(len(d.events))
	if events[0].Offset != next {
		return chain.ErrStale
	}
	d.events = append(d.events, events...)
	return nil
}

func (d *skipDst) SkipTo(_ context.Context, floor chain.Head) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refuse {
		return chain.ErrStale
	}
	d.skipped = &floor
	return nil
}

func fetchFloor(t *testing.T, src Store, dst Store, req PullRequest) (int64, error, error) {
	t.Helper()
	return pipeFetch(t, func(ctx context.Context, c net.Conn) error {
		_, err := Serve(ctx, src, c, Limits{FrameFillBytes: 1024})
		return err
	}, dst, req, chain.Head{}, Limits{}, nil)
}

func TestPullBelowTheFloor(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(4, 4))
	mem := newMemStore()
	for range 15 {
		mem.Publish(t, r, o, 7) // batches of 7: offset 39 carries no signed head
	}
	all := mem.Events(o.Stream)
	floor := chain.Head{Stream: o.Stream, Offset: 39, Lamport: all[39].Lamport, Hash: chain.LinkAll(chain.Genesis, all[:40])}
	src := &floorSrc{memStore: mem, floor: floor}

	dst := &skipDst{memStore: newMemStore()}
	have, err, serr := fetchFloor(t, src, dst, PullRequest{Stream: o.Stream, From: -1, To: 104})
	if err != nil || serr != nil || have != 104 {
		t.Fatalf("have %d: %v / %v", have, err, serr)
	}
	if dst.skipped == nil || dst.skipped.Offset != 39 || !reflect.DeepEqual(dst.events, all[40:]) {
		t.Fatalf("skipped to %+v, got %d events", dst.skipped, len(dst.events))
	}

	// A floor head that does not chain to the signed heads is caught.
	bad := floor
	bad.Hash[0] ^= 1
	_, err, _ = fetchFloor(t, &floorSrc{memStore: mem, floor: bad}, &skipDst{memStore: newMemStore()}, PullRequest{Stream: o.Stream, From: -1, To: 104})
	if !errors.Is(err, chain.ErrIntegrity) || Blame(err) != FaultMisbehaviour {
		t.Fatalf("forged floor: %v", err)
	}

	// A store that will not skip stops the pull, without blaming the peer.
	_, err, _ = fetchFloor(t, src, &skipDst{memStore: newMemStore(), refuse: true}, PullRequest{Stream: o.Stream, From: -1, To: 104})
	if !errors.Is(err, chain.ErrStale) || Blame(err) == FaultMisbehaviour {
		t.Fatalf("refused skip: %v", err)
	}

	// Everything expired: the floor alone answers.
	all2 := &floorSrc{memStore: mem, floor: chain.Head{Stream: o.Stream, Offset: 104, Lamport: all[104].Lamport, Hash: chain.LinkAll(chain.Genesis, all)}}
	empty := newMemStore()
	all2.memStore = empty
	dst = &skipDst{memStore: newMemStore()}
	have, err, serr = fetchFloor(t, all2, dst, PullRequest{Stream: o.Stream, From: -1, To: 104})
	if err != nil || serr != nil || have != 104 || dst.skipped == nil || len(dst.events) != 0 {
		t.Fatalf("all expired: have %d, %v / %v, skipped %+v", have, err, serr, dst.skipped)
	}
}

func TestExpiryOnTheWire(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(5, 5))
	mem := newMemStore()
	mem.Publish(t, r, o, 3)
	hs, _ := mem.Heads(context.Background())
	a := Announce{Node: o.ID.String(), Heads: []chain.SignedHead{hs[o.Stream]}, Expiry: []expiry.StreamExpiry{
		{Stream: o.Stream, Floor: 2, HasRetention: true, Retention: expiry.Retention{MaxEvents: 1000, MaxBytes: 50 << 20, MaxAge: 7 * 24 * time.Hour}},
		{Stream: "12D3KooWrelayed-3", Floor: 77},
	}}
	b, err := EncodeAnnounce(a, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAnnounce(b, Limits{})
	if err != nil || !reflect.DeepEqual(got.Expiry, a.Expiry) {
		t.Fatalf("announce round trip: %+v, %v", got.Expiry, err)
	}
	// An announce without floors (an older node) still decodes.
	a.Expiry = nil
	b, _ = EncodeAnnounce(a, Limits{})
	if got, err := DecodeAnnounce(b, Limits{}); err != nil || got.Expiry != nil {
		t.Fatalf("announce without expiry: %+v, %v", got, err)
	}
	// Bad floors are malformed.
	w := wireAnnounce{Node: o.ID.String(), Expiry: []wireExpiry{{Stream: "not a stream", Floor: 1}}}
	b, _ = wireEnc.Marshal(w)
	if _, err := DecodeAnnounce(b, Limits{}); !errors.Is(err, chain.ErrMalformed) {
		t.Fatalf("bad stream: %v", err)
	}
	w.Expiry = []wireExpiry{{Stream: string(o.Stream), HasRule: true, MaxBytes: -1}}
	b, _ = wireEnc.Marshal(w)
	if _, err := DecodeAnnounce(b, Limits{}); !errors.Is(err, chain.ErrMalformed) {
		t.Fatalf("negative rule: %v", err)
	}

	// A frame's floor.
	fl := chain.Head{Stream: o.Stream, Offset: 9, Lamport: 12, Hash: chain.Hash{1, 2, 3}}
	c1, c2 := net.Pipe()
	go func() {
		WriteFrame(c1, Frame{Floor: &fl})
		c1.Close()
	}()
	f, err := ReadFrame(bufio.NewReader(c2), o.Stream, 1<<20)
	if err != nil || f.Floor == nil || *f.Floor != fl {
		t.Fatalf("frame floor: %+v, %v", f.Floor, err)
	}
}
