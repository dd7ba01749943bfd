package chain_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fxamacker/cbor/v2"

	. "github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/chain/chaintest"
	"github.com/edgelog/edgelog/event"
)

var newOrigin, randomEvents = chaintest.NewOrigin, chaintest.RandomEvents

// canonicalEnc is RFC 8949's core deterministic encoding, which
// AppendCanonical writes by hand.
var canonicalEnc, _ = cbor.CoreDetEncOptions().EncMode()

func TestCanonicalMatchesCBOR(t *testing.T) {
	type canon struct {
		_         struct{} `cbor:",toarray"`
		Stream    string
		Offset    uint64
		Lamport   uint64
		Timestamp int64
		Tags      []string
		AppID     string
		Payload   []byte
	}
	r := rand.New(rand.NewPCG(1, 2))
	events := randomEvents(r, "s-0", 0, 0, 200)
	events = append(events,
		event.Event{Stream: "x-1", Offset: 1 << 40, Lamport: 1<<64 - 1, Timestamp: -1 << 63, Tags: []string{}, Payload: make([]byte, 70000)},
		event.Event{Stream: "x-1", Offset: 255, Lamport: 65536, Timestamp: 1<<63 - 1, Tags: []string{"b", "a", "b"}, AppID: string(make([]byte, 300))},
	)
	for _, e := range events {
		tags := slices.Compact(slices.Sorted(slices.Values(e.Tags)))
		if tags == nil {
			tags = []string{}
		}
		payload := e.Payload
		if payload == nil {
			payload = []byte{} // a nil payload is hashed as an empty byte string
		}
		want, err := canonicalEnc.Marshal(canon{Stream: string(e.Stream), Offset: e.Offset, Lamport: e.Lamport, Timestamp: e.Timestamp, Tags: tags, AppID: e.AppID, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendCanonical(nil, &e); !bytes.Equal(got, want) {
			t.Fatalf("canonical(%+v)\n got %x\nwant %x", e, got, want)
		}
	}
	// Tag order and duplicates do not change the hash.
	a := event.Event{Stream: "s-0", Tags: []string{"x", "y"}, Lamport: 1}
	b := event.Event{Stream: "s-0", Tags: []string{"y", "x", "y"}, Lamport: 1}
	if Link(Genesis, &a) != Link(Genesis, &b) {
		t.Fatal("tag order changes the chain hash")
	}
}

func TestSignVerifyHead(t *testing.T) {
	o, other := newOrigin(t), newOrigin(t)
	h := Head{Stream: o.Stream, Offset: 7, Lamport: 9, Hash: Hash{1, 2}}
	sh, err := SignHead(o.Key, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyHead(sh); err != nil {
		t.Fatal(err)
	}
	if _, err := SignHead(other.Key, h); err == nil {
		t.Fatal("signed a head of another node's stream")
	}
	bad := []func(*SignedHead){
		func(s *SignedHead) { s.Offset++ },
		func(s *SignedHead) { s.Lamport++ },
		func(s *SignedHead) { s.Hash[31] ^= 1 },
		func(s *SignedHead) { s.Stream = event.NewStreamID(o.ID, 1) },
		func(s *SignedHead) { s.Stream = other.Stream },
		func(s *SignedHead) { s.Stream = "notapeer-0" },
		func(s *SignedHead) { s.Stream = "bad" },
		func(s *SignedHead) { s.Sig = nil },
		func(s *SignedHead) { s.Sig = slices.Clone(s.Sig); s.Sig[0] ^= 1 },
		func(s *SignedHead) { s.Sig = make([]byte, 200) },
	}
	for i, mutate := range bad {
		c := sh
		mutate(&c)
		if err := VerifyHead(c); !errors.Is(err, ErrBadSignature) || !errors.Is(err, ErrIntegrity) {
			t.Errorf("mutation %d: err = %v, want ErrBadSignature", i, err)
		}
	}
}

func TestVerifyRange(t *testing.T) {
	o, other := newOrigin(t), newOrigin(t)
	r := rand.New(rand.NewPCG(3, 4))
	base := randomEvents(r, o.Stream, 0, 0, 5)
	prev := LinkAll(Genesis, base)
	evs := randomEvents(r, o.Stream, 5, base[4].Lamport, 10)
	head := o.Sign(t, prev, evs)
	if err := VerifyRange(prev, 4, evs, head); err != nil {
		t.Fatal(err)
	}
	if err := VerifyRange(Genesis, -1, base, o.Sign(t, Genesis, base)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(evs []event.Event, h *SignedHead, prev *Hash, have *int64) []event.Event
		want   error
	}{
		{"wrong prev hash", func(e []event.Event, h *SignedHead, p *Hash, _ *int64) []event.Event { p[0] ^= 1; return e }, ErrBrokenChain},
		{"altered payload", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event {
			e[3].Payload = append(slices.Clone(e[3].Payload), 0)
			return e
		}, ErrBrokenChain},
		{"altered tag", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event {
			e[0].Tags = []string{"evil"}
			return e
		}, ErrBrokenChain},
		{"altered timestamp", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event { e[9].Timestamp++; return e }, ErrBrokenChain},
		{"altered app", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event { e[9].AppID = "x"; return e }, ErrBrokenChain},
		{"altered lamport", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event { e[9].Lamport++; return e }, ErrBrokenChain},
		{"dropped from middle", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event { return slices.Delete(e, 4, 5) }, ErrGap},
		{"dropped at end", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event { return e[:9] }, ErrGap},
		{"extra at end", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event {
			x := e[9]
			x.Offset++
			x.Lamport++
			return append(e, x)
		}, ErrGap},
		{"reordered", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event {
			e[2], e[3] = e[3], e[2]
			return e
		}, ErrGap},
		{"wrong have", func(e []event.Event, h *SignedHead, _ *Hash, have *int64) []event.Event { *have = 3; return e }, ErrGap},
		{"lamport not increasing", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event {
			e[5].Lamport = e[4].Lamport
			return e
		}, ErrLamportOrder},
		{"foreign event", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event {
			e[1].Stream = other.Stream
			return e
		}, ErrWrongStream},
		{"bad signature", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event {
			h.Sig = slices.Clone(h.Sig)
			h.Sig[5] ^= 0x80
			return e
		}, ErrBadSignature},
		{"head signed by another node", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event {
			sig := ed25519.Sign(other.Key, HeadMessage(h.Head))
			h.Sig = sig
			return e
		}, ErrBadSignature},
		{"forged stream", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event {
			for i := range e {
				e[i].Stream = other.Stream
			}
			return e
		}, ErrWrongStream},
		{"empty", func(e []event.Event, h *SignedHead, _ *Hash, _ *int64) []event.Event { return nil }, ErrGap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := slices.Clone(evs)
			h, p, have := head, prev, int64(4)
			e = tt.mutate(e, &h, &p, &have)
			err := VerifyRange(p, have, e, h)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrIntegrity) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifierCheckpoints(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(7, 8))
	evs := randomEvents(r, o.Stream, 0, 0, 10)
	h4 := o.Sign(t, Genesis, evs[:5])
	h9 := o.Sign(t, Genesis, evs)
	v := NewVerifier(o.Stream, -1, 0, Genesis)
	if err := v.Add(evs[:7]); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Checkpoint(h9); !errors.Is(err, ErrGap) {
		t.Fatalf("head beyond events: %v", err)
	}
	v = NewVerifier(o.Stream, -1, 0, Genesis)
	v.Add(evs[:7])
	got, err := v.Checkpoint(h4)
	if err != nil || len(got) != 5 {
		t.Fatalf("checkpoint at 4: %d events, %v", len(got), err)
	}
	if n, _ := v.Pending(); n != 2 {
		t.Fatalf("pending %d, want 2", n)
	}
	if got, err := v.Checkpoint(h4); err != nil || got != nil {
		t.Fatalf("repeated checkpoint: %v %v", got, err)
	}
	if err := v.Add(evs[7:]); err != nil {
		t.Fatal(err)
	}
	got, err = v.Checkpoint(h9)
	if err != nil || len(got) != 5 || got[0].Offset != 5 {
		t.Fatalf("checkpoint at 9: %v, %v", got, err)
	}
	if off, l, h := v.Tip(); off != 9 || l != evs[9].Lamport || h != h9.Hash {
		t.Fatalf("tip %d %d", off, l)
	}
	// A failed verifier stays failed.
	if err := v.Add(evs[:1]); !errors.Is(err, ErrGap) {
		t.Fatal(err)
	}
	if err := v.Add(nil); !errors.Is(err, ErrGap) {
		t.Fatal("failure forgotten")
	}
}

func BenchmarkLink(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	e := randomEvents(r, "12D3KooWabcdefghijklmnopqrstuvwxyz-0", 0, 0, 1)[0]
	e.Payload = make([]byte, 100)
	var h Hash
	for b.Loop() {
		h = Link(h, &e)
	}
}
