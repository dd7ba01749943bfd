package p2p

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/replicate"
)

// TestIngestFreshBatch: the fresh batches of several announces taken
// together are verified one after the other and stored in one Ingest; a
// forged one is blamed on its announce and stores nothing of its own.
func TestIngestFreshBatch(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(9, 9))
	src := newMemStore()
	src.Publish(t, r, o, 5) // offsets 0-4
	src.Publish(t, r, o, 3) // 5-7
	src.Publish(t, r, o, 2) // 8-9
	all := src.Events(o.Stream)
	h := func(off uint64) chain.SignedHead {
		sh, ok := src.HeadAt(o.Stream, off)
		if !ok {
			t.Fatalf("no head at %d", off)
		}
		return sh
	}
	ann := func(head uint64, evs []event.Event) *validAnnounce {
		return &validAnnounce{a: replicate.Announce{Node: o.ID.String(), Fresh: []replicate.FreshEvents{{Head: h(head), Events: evs}}}}
	}
	service := func() (*Service, *memStore) {
		dst := newMemStore()
		return &Service{cfg: Config{Store: dst}, serial: &serialStore{Store: dst}, self: newOrigin(t).ID, heads: newHeadCache(16), log: slog.New(slog.DiscardHandler)}, dst
	}
	check := func(name string, dst *memStore, stored map[event.StreamID]uint64, want int) {
		t.Helper()
		if got := dst.Events(o.Stream); !reflect.DeepEqual(got, all[:want]) {
			t.Fatalf("%s: stored %d events, want the first %d", name, len(got), want)
		}
		if stored[o.Stream] != uint64(want-1) {
			t.Fatalf("%s: reported %v stored, want offset %d", name, stored, want-1)
		}
	}

	// Announces repeat events (FreshRepeat): the second overlaps the first.
	s, dst := service()
	stored, forged, err := s.ingestFresh(ctx, []*validAnnounce{ann(4, all[0:5]), ann(7, all[3:8]), ann(9, all[8:10])})
	if err != nil || slices.ContainsFunc(forged, func(e error) bool { return e != nil }) {
		t.Fatalf("honest batch: %v, forged %v", err, forged)
	}
	check("honest batch", dst, stored, 10)
	if dst.Ingests() != 1 {
		t.Fatalf("honest batch: %d ingests, want 1", dst.Ingests())
	}

	// Two streams in one batch: each stored in its own Ingest (they run
	// concurrently).
	o2 := newOrigin(t)
	src.Publish(t, r, o2, 3)
	all2 := src.Events(o2.Stream)
	s, dst = service()
	two := ann(4, all[0:5])
	two.a.Fresh = append(two.a.Fresh, replicate.FreshEvents{Head: func() chain.SignedHead { sh, _ := src.HeadAt(o2.Stream, 2); return sh }(), Events: all2})
	stored, forged, err = s.ingestFresh(ctx, []*validAnnounce{two, ann(9, all[3:10])})
	if err != nil || slices.ContainsFunc(forged, func(e error) bool { return e != nil }) {
		t.Fatalf("two streams: %v, forged %v", err, forged)
	}
	check("two streams", dst, stored, 10)
	if got := dst.Events(o2.Stream); !reflect.DeepEqual(got, all2) || stored[o2.Stream] != 2 || dst.Ingests() != 2 {
		t.Fatalf("two streams: second stream has %d events, stored %v, %d ingests", len(got), stored, dst.Ingests())
	}

	// A forged announce in the middle: the one before it is stored, the
	// one after it no longer connects and waits for a pull.
	bad := slices.Clone(all[3:8])
	bad[2].AppID = "evil"
	s, dst = service()
	stored, forged, err = s.ingestFresh(ctx, []*validAnnounce{ann(4, all[0:5]), ann(7, bad), ann(9, all[8:10])})
	if err != nil || forged[0] != nil || !errors.Is(forged[1], chain.ErrIntegrity) || forged[2] != nil {
		t.Fatalf("forged batch: %v, forged %v", err, forged)
	}
	check("forged batch", dst, stored, 5)

	// What the validator verified against another chain than the one the
	// batch now extends is verified again, not taken on trust.
	s, dst = service()
	a := ann(4, all[0:5])
	a.fresh = []replicate.CheckedFresh{{OK: true, Have: -1, Prev: chain.Hash{1}, Events: randomEvents(r, o.Stream, 0, 0, 5)}}
	stored, forged, err = s.ingestFresh(ctx, []*validAnnounce{a})
	if err != nil || forged[0] != nil {
		t.Fatalf("stale verdict: %v, forged %v", err, forged)
	}
	check("stale verdict", dst, stored, 5)
}
