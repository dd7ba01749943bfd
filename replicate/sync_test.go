package replicate

import (
	"bufio"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"testing"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
	"github.com/edgelog/edgelog/replicate/replicatetest"
)

// syncWorld is a set of origins, one stream each, and the signed head of
// each at every offset up to 20, so tests give nodes any offset map.
type syncWorld struct {
	origins []replicatetest.Origin
	heads   [][]chain.SignedHead
}

func newSyncWorld(t *testing.T, n int) *syncWorld {
	w := &syncWorld{}
	r := rand.New(rand.NewPCG(5, 5))
	for range n {
		o := newOrigin(t)
		st := newMemStore()
		var hs []chain.SignedHead
		for off := range uint64(20) {
			st.Publish(t, r, o, 1)
			h, ok := st.HeadAt(o.Stream, off)
			if !ok {
				t.Fatalf("no head at %d", off)
			}
			hs = append(hs, h)
		}
		w.origins = append(w.origins, o)
		w.heads = append(w.heads, hs)
	}
	return w
}

// view returns the view of a node holding stream i up to offs[i] (-1:
// not at all).
func (w *syncWorld) view(offs []int) SyncView {
	heads := map[event.StreamID]chain.SignedHead{}
	for i, off := range offs {
		if off >= 0 {
			heads[w.origins[i].Stream] = w.heads[i][off]
		}
	}
	return SyncView{Digest: NewDigest(heads), Heads: heads, Expiry: map[event.StreamID]expiry.StreamExpiry{}}
}

func runSync(t *testing.T, a, b SyncView, lim Limits) (ra, rb SyncResult, ea, eb error) {
	t.Helper()
	ca, cb := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		rb, eb = SyncRespond(context.Background(), cb, b, chain.VerifyHead, lim)
		cb.Close()
	}()
	ra, ea = SyncInitiate(context.Background(), ca, a, chain.VerifyHead, lim)
	ca.Close()
	<-done
	return
}

func offsetsOf(hs []chain.SignedHead) map[event.StreamID]uint64 {
	m := map[event.StreamID]uint64{}
	for _, h := range hs {
		m[h.Stream] = h.Offset
	}
	return m
}

func TestDigest(t *testing.T) {
	w := newSyncWorld(t, 40)
	offs := make([]int, 40)
	for i := range offs {
		offs[i] = i % 20
	}
	a := w.view(offs)
	if b := w.view(offs); a.Digest.Root() != b.Digest.Root() || a.Digest.Len() != 40 {
		t.Fatal("equal offset maps, different digests")
	}
	offs[7]++
	b := w.view(offs)
	if a.Digest.Root() == b.Digest.Root() {
		t.Fatal("one stream moved, digest unchanged")
	}
	// Update reuses the old digest and gives the same result.
	if u := a.Digest.Update(b.Heads); u.Root() != b.Digest.Root() {
		t.Fatal("Update differs from a fresh digest")
	}
	for _, n := range []int{1, 8, digestFine} {
		ba, bb := a.Digest.Buckets(n), b.Digest.Buckets(n)
		differ := 0
		for i := range n {
			if ba[i] != bb[i] {
				differ++
				if i != BucketOf(w.origins[7].Stream, n) {
					t.Fatalf("%d buckets: bucket %d differs, the moved stream is in %d", n, i, BucketOf(w.origins[7].Stream, n))
				}
			}
		}
		if differ != 1 {
			t.Fatalf("%d buckets: %d differ, want 1", n, differ)
		}
	}
	if got := BucketsFor(3, 40, 8); got != 8 {
		t.Fatalf("BucketsFor(3, 40, 8) = %d, want 8", got)
	}
	if got := BucketsFor(1e6, 0, 8); got != digestFine {
		t.Fatalf("BucketsFor(1e6) = %d, want %d", got, digestFine)
	}
}

func TestSyncExchangesWhatDiffers(t *testing.T) {
	w := newSyncWorld(t, 60)
	offA, offB := make([]int, 60), make([]int, 60)
	for i := range 60 {
		offA[i], offB[i] = 10, 10
	}
	offA[3], offB[3] = 15, 12  // A ahead
	offA[17], offB[17] = 4, 19 // B ahead
	offA[40] = -1              // only B holds it
	offB[50] = -1              // only A holds it
	ra, rb, ea, eb := runSync(t, w.view(offA), w.view(offB), Limits{})
	if ea != nil || eb != nil {
		t.Fatal(ea, eb)
	}
	gotA, gotB := offsetsOf(ra.Heads), offsetsOf(rb.Heads)
	wantA := map[event.StreamID]uint64{w.origins[17].Stream: 19, w.origins[40].Stream: 10}
	wantB := map[event.StreamID]uint64{w.origins[3].Stream: 15, w.origins[50].Stream: 10}
	if !mapsEqual(gotA, wantA) || !mapsEqual(gotB, wantB) {
		t.Fatalf("initiator learnt %v, want %v; responder learnt %v, want %v", gotA, wantA, gotB, wantB)
	}
	if ra.Equal || ra.More {
		t.Fatalf("result %+v", ra)
	}
	// One stream differs: the exchange lists its bucket (of 8), not the
	// whole map.
	offB = slices.Clone(offA)
	offB[33]++
	ra, _, ea, eb = runSync(t, w.view(offA), w.view(offB), Limits{})
	listing := 60 * (len(w.origins[0].Stream) + 4)
	if ea != nil || eb != nil || len(ra.Heads) != 1 || ra.Sent+ra.Received > listing/3 {
		t.Fatalf("one stream differs: %d heads, %d bytes (listing all: %d), %v %v", len(ra.Heads), ra.Sent+ra.Received, listing, ea, eb)
	}

	ra, rb, ea, eb = runSync(t, w.view(offA), w.view(offA), Limits{})
	if ea != nil || eb != nil || !ra.Equal || !rb.Equal || len(ra.Heads) > 0 {
		t.Fatalf("equal maps: %+v %+v %v %v", ra, rb, ea, eb)
	}
	if ra.Sent+ra.Received > 32 {
		t.Fatalf("equal maps: %d bytes", ra.Sent+ra.Received)
	}
}

func TestSyncInRounds(t *testing.T) {
	// Limits that fit a few entries per message (16, so buckets of 4
	// streams on average): a sync of two nodes that share nothing takes
	// several rounds, each saying More, and learns everything in the end.
	w := newSyncWorld(t, 50)
	offA, offB := make([]int, 50), make([]int, 50)
	for i := range 50 {
		offA[i], offB[i] = -1, 5
	}
	lim := Limits{MaxHeads: 16}
	a := w.view(offA)
	learnt := map[event.StreamID]uint64{}
	for round := 0; ; round++ {
		if round > 50 {
			t.Fatal("no end of rounds")
		}
		ra, _, ea, eb := runSync(t, a, w.view(offB), lim)
		if ea != nil || eb != nil {
			t.Fatal(ea, eb)
		}
		for _, h := range ra.Heads {
			learnt[h.Stream] = h.Offset
			// the initiator pulls what it learnt; here it just takes the head
			for i, o := range w.origins {
				if o.Stream == h.Stream {
					offA[i] = int(h.Offset)
				}
			}
		}
		a = w.view(offA)
		if !ra.More {
			break
		}
	}
	if len(learnt) != 50 {
		t.Fatalf("learnt %d streams, want 50", len(learnt))
	}
}

func TestSyncRejectsLies(t *testing.T) {
	w := newSyncWorld(t, 10)
	offs := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	b := w.view(offs)
	forged := b.Heads[w.origins[2].Stream]
	forged.Sig = append([]byte(nil), forged.Sig...)
	forged.Sig[0] ^= 1
	b.Heads[w.origins[2].Stream] = forged
	a := w.view([]int{1, 2, 1, 4, 5, 6, 7, 8, 9, 10})
	_, _, ea, _ := runSync(t, a, b, Limits{})
	if !errors.Is(ea, chain.ErrIntegrity) {
		t.Fatalf("forged head: %v, want an integrity error", ea)
	}

	// A responder that answers garbage, or lists buckets that do not exist.
	for _, reply := range []wireSync{
		{N: 3, Buckets: []uint64{1, 2, 3}},
		{N: 4, Buckets: []uint64{1}},
	} {
		ca, cb := net.Pipe()
		go func() {
			defer cb.Close()
			if _, err := readMsg(bufio.NewReader(cb), 1<<20); err == nil {
				writeMsg(cb, reply)
			}
		}()
		_, err := SyncInitiate(context.Background(), ca, a, chain.VerifyHead, Limits{})
		ca.Close()
		if !errors.Is(err, chain.ErrMalformed) {
			t.Fatalf("reply %+v: %v, want malformed", reply, err)
		}
	}
}

func mapsEqual(a, b map[event.StreamID]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
