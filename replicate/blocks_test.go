package replicate

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"testing"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/replicate/replicatetest"
)

// pullBlocks is pull with ServeBlocks.
func pullBlocks(t *testing.T, src, dst *memStore, req PullRequest, lim Limits) (int64, error, error) {
	t.Helper()
	prev, _ := dst.Head(req.Stream)
	return pipeFetch(t, func(ctx context.Context, c net.Conn) error {
		_, err := ServeBlocks(ctx, src, c, lim)
		return err
	}, dst, req, prev, lim, nil)
}

func TestPullBlocksCopiesAStream(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(21, 1))
	src, dst := newMemStore(), newMemStore()
	for range 30 {
		src.Publish(t, r, o, 1+r.IntN(30))
	}
	_, top := src.Head(o.Stream)
	lim := Limits{FrameFillBytes: 2048}
	// In pieces whose ends fall inside blocks and runs, then the rest.
	for _, to := range []int64{5, 6, 40, 41, 300, top} {
		_, mine := dst.Head(o.Stream)
		if mine >= to {
			continue
		}
		have, err, serr := pullBlocks(t, src, dst, PullRequest{Stream: o.Stream, From: mine, To: uint64(to)}, lim)
		if err != nil || serr != nil || have < to {
			t.Fatalf("to %d: have %d: %v / %v", to, have, err, serr)
		}
	}
	if !reflect.DeepEqual(dst.Events(o.Stream), src.Events(o.Stream)) {
		t.Fatal("copy differs")
	}
	if dst.Decoded() == 0 {
		t.Fatal("no blocks were decoded: the answer was not in blocks")
	}
}

func TestPullBlocksRejectsLies(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(22, 2))
	honest := newMemStore()
	for range 5 {
		honest.Publish(t, r, o, 10)
	}
	all := honest.Events(o.Stream)
	var blocks []chain.Block
	var heads []*chain.SignedHead
	for en, err := range honest.ReadBlocks(context.Background(), o.Stream, -1, 49) {
		if err != nil {
			t.Fatal(err)
		}
		b := *en.Block
		b.Data = slices.Clone(b.Data)
		blocks, heads = append(blocks, b), append(heads, en.Head)
	}
	block := func(evs []event.Event) chain.Block {
		data, err := replicatetest.EncodeBlock(evs)
		if err != nil {
			t.Fatal(err)
		}
		return chain.Block{First: evs[0].Offset, Data: data}
	}
	last := heads[len(heads)-1]
	tests := []struct {
		name   string
		frames []Frame
		want   error
	}{
		{"altered event", func() []Frame {
			evs := slices.Clone(all[:blockEvents])
			evs[3].Payload = []byte{1, 2, 3}
			bs := slices.Clone(blocks)
			bs[0] = block(evs)
			return []Frame{{Blocks: bs, Head: last, End: true}}
		}(), chain.ErrBrokenChain},
		{"garbage block", []Frame{{Blocks: []chain.Block{{First: 0, Data: []byte{0xff, 0x00}}}, Head: last, End: true}}, chain.ErrMalformed},
		{"misplaced block", []Frame{{Blocks: append([]chain.Block{blocks[1]}, blocks...), Head: last, End: true}}, chain.ErrGap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			go lie(t, a, tt.frames)
			dst := newMemStore()
			_, err := Fetch(context.Background(), dst, b, PullRequest{Stream: o.Stream, From: -1, To: 49}, chain.Head{}, Limits{}, nil)
			if !errors.Is(err, tt.want) || Blame(err) != FaultMisbehaviour {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if hs, _ := dst.Heads(context.Background()); len(hs) != 0 {
				t.Fatalf("stored something: %v", hs)
			}
		})
	}
}

func TestPullBlocksBudget(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(23, 3))
	src, dst := newMemStore(), newMemStore()
	src.Publish(t, r, o, 200) // one run: nothing is verified before its end
	_, err, _ := pullBlocks(t, src, dst, PullRequest{Stream: o.Stream, From: -1, To: 199}, Limits{FrameFillBytes: 512, MaxUnverifiedBytes: 1000})
	if !errors.Is(err, chain.ErrTooMuchUnverified) {
		t.Fatalf("err = %v, want chain.ErrTooMuchUnverified", err)
	}
}
