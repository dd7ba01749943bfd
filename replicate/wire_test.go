package replicate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/fxamacker/cbor/v2"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

func sampleAnnounce(t testing.TB) Announce {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(9, 9))
	evs := randomEvents(r, o.Stream, 0, 0, 3)
	h := o.Sign(t, chain.Genesis, evs)
	return Announce{Node: o.ID.String(), Heads: []chain.SignedHead{h}, Fresh: []FreshEvents{{Head: h, Events: evs}}}
}

func TestAnnounceRoundTrip(t *testing.T) {
	a := sampleAnnounce(t)
	b, err := EncodeAnnounce(a, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAnnounce(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, a)
	}
	if _, err := EncodeAnnounce(a, Limits{MaxFreshEvents: 2}); err == nil {
		t.Fatal("encoded over the fresh limit")
	}
}

func TestDecodeAnnounceErrors(t *testing.T) {
	a := sampleAnnounce(t)
	good, _ := EncodeAnnounce(a, Limits{})
	enc := func(w any) []byte {
		b, err := wireEnc.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wh := toWireHead(a.Heads[0])
	shortHash := wh
	shortHash.Hash = wh.Hash[:31]
	badStream := wh
	badStream.Stream = "no stream"
	noSig := wh
	noSig.Sig = nil
	many := make([]wireHead, 5)
	for i := range many {
		many[i] = wh
	}
	tests := []struct {
		name string
		data []byte
		lim  Limits
	}{
		{"empty", nil, Limits{}},
		{"not cbor", []byte{0xff, 0x00}, Limits{}},
		{"trailing bytes", append(good[:len(good):len(good)], 0), Limits{}},
		{"truncated", good[:len(good)-1], Limits{}},
		{"too big", good, Limits{MaxAnnounceBytes: len(good) - 1}},
		{"too many heads", enc(wireAnnounce{Node: "n", Heads: many}), Limits{MaxHeads: 4}},
		{"too many fresh", good, Limits{MaxFreshEvents: 2}},
		{"no node", enc(wireAnnounce{Heads: []wireHead{wh}}), Limits{}},
		{"short hash", enc(wireAnnounce{Node: "n", Heads: []wireHead{shortHash}}), Limits{}},
		{"bad stream", enc(wireAnnounce{Node: "n", Heads: []wireHead{badStream}}), Limits{}},
		{"no signature", enc(wireAnnounce{Node: "n", Heads: []wireHead{noSig}}), Limits{}},
		{"fresh without events", enc(wireAnnounce{Node: "n", Fresh: []wireFresh{{Head: wh}}}), Limits{}},
		{"wrong type", enc(map[int]any{1: 5}), Limits{}},
		{"deep nesting", bytes.Repeat([]byte{0x81}, 100), Limits{}},
		{"huge array header", []byte{0xa1, 0x02, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, Limits{}},
		{"duplicate key", []byte{0xa2, 0x01, 0x61, 'a', 0x01, 0x61, 'b'}, Limits{}},
		{"indefinite length", []byte{0xbf, 0x01, 0x61, 'a', 0xff}, Limits{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeAnnounce(tt.data, tt.lim)
			if !errors.Is(err, chain.ErrMalformed) {
				t.Fatalf("err = %v, want chain.ErrMalformed", err)
			}
		})
	}
}

func FuzzDecodeAnnounce(f *testing.F) {
	a := sampleAnnounce(f)
	good, _ := EncodeAnnounce(a, Limits{})
	f.Add(good)
	empty, _ := EncodeAnnounce(Announce{Node: "x"}, Limits{})
	f.Add(empty)
	f.Add([]byte{0xa1, 0x02, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxHeads: 8, MaxFreshEvents: 8}
		a, err := DecodeAnnounce(data, lim)
		if err != nil {
			if !errors.Is(err, chain.ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if len(a.Heads) > 8 {
			t.Fatalf("%d heads passed the limit", len(a.Heads))
		}
		for _, h := range a.Heads {
			if !h.Stream.Valid() {
				t.Fatalf("invalid stream %q passed", h.Stream)
			}
			_ = chain.VerifyHead(h) // must not panic
		}
		// What decodes re-encodes and decodes to the same value.
		b, err := EncodeAnnounce(a, lim)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		a2, err := DecodeAnnounce(b, lim)
		if err != nil || !reflect.DeepEqual(a, a2) {
			t.Fatalf("unstable: %v\n%+v\n%+v", err, a, a2)
		}
	})
}

func TestFrameRoundTrip(t *testing.T) {
	a := sampleAnnounce(t)
	fr := Frame{Events: a.Fresh[0].Events, Head: &a.Heads[0]}
	blocks := Frame{Blocks: []chain.Block{{First: 3, Data: []byte{1, 2, 3}}, {First: 9, Data: []byte{4}}}, Head: &a.Heads[0]}
	var buf bytes.Buffer
	for _, f := range []Frame{fr, blocks, {End: true, Head: &a.Heads[0]}, {End: true, Error: "nope"}, {}} {
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	stream := a.Heads[0].Stream
	for i, want := range []Frame{fr, blocks, {End: true, Head: &a.Heads[0]}, {End: true, Error: "nope"}, {}} {
		got, err := ReadFrame(r, stream, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("frame %d\n got %+v\nwant %+v", i, got, want)
		}
	}
	if _, err := ReadFrame(r, stream, 1<<20); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	var buf bytes.Buffer
	WriteFrame(&buf, Frame{Events: []event.Event{{Lamport: 1, Payload: make([]byte, 100)}}})
	good := buf.Bytes()
	huge := binary.AppendUvarint(nil, 1<<62)
	overflow := bytes.Repeat([]byte{0xff}, 11)
	errFrame, _ := cbor.Marshal(map[int]any{4: "x"})
	mixed, _ := cbor.Marshal(map[int]any{1: []any{[]any{0, 1, 0, []string{}, "a", []byte{1}}}, 6: []any{[]any{0, []byte{1}}}})
	emptyBlock, _ := cbor.Marshal(map[int]any{6: []any{[]any{0, []byte{}}}})
	tests := []struct {
		name string
		data []byte
		max  int
		want error
	}{
		{"over max", good, len(good) - 3, chain.ErrMalformed},
		{"huge length", huge, 1 << 20, chain.ErrMalformed},
		{"varint overflow", overflow, 1 << 20, chain.ErrMalformed},
		{"truncated body", good[:len(good)-1], 1 << 20, io.ErrUnexpectedEOF},
		{"truncated length", []byte{0x80}, 1 << 20, io.ErrUnexpectedEOF},
		{"garbage", append([]byte{3}, 0xff, 0xff, 0xff), 1 << 20, chain.ErrMalformed},
		{"error without end", append([]byte{byte(len(errFrame))}, errFrame...), 1 << 20, chain.ErrMalformed},
		{"events and blocks", append([]byte{byte(len(mixed))}, mixed...), 1 << 20, chain.ErrMalformed},
		{"empty block", append([]byte{byte(len(emptyBlock))}, emptyBlock...), 1 << 20, chain.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tt.data), "a-0", tt.max)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestReadFrameTransportError: an error of the reader itself (a stream
// reset by a peer that stopped mid-transfer) is a failed transfer, not
// malformed data. Blamed as misbehaviour, it made the puller shun a peer
// that merely restarted, for an hour: no more announces went to it.
func TestReadFrameTransportError(t *testing.T) {
	reset := errors.New("stream reset")
	for _, data := range [][]byte{nil, {0x80}, {0x85, 0x80}} {
		r := bufio.NewReader(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(reset)))
		_, err := ReadFrame(r, "a-0", 1<<20)
		if !errors.Is(err, reset) || Blame(err) != FaultTransient {
			t.Errorf("reset after %x: %v, blamed %v", data, err, Blame(err))
		}
	}
}

func TestRequestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	req := PullRequest{Stream: "abc-0", From: -1, To: 5}
	WriteRequest(&buf, req)
	got, err := ReadRequest(bufio.NewReader(&buf))
	if err != nil || got != req {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range []PullRequest{{Stream: "x", From: -1, To: 1}, {Stream: "a-0", From: 5, To: 5}, {Stream: "a-0", From: -2, To: 5}, {Stream: event.StreamID(strings.Repeat("a", 600) + "-0"), From: -1, To: 1}} {
		buf.Reset()
		WriteRequest(&buf, bad)
		if _, err := ReadRequest(bufio.NewReader(&buf)); !errors.Is(err, chain.ErrMalformed) {
			t.Errorf("%+v: err = %v", bad, err)
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	a := sampleAnnounce(f)
	var buf bytes.Buffer
	WriteFrame(&buf, Frame{Events: a.Fresh[0].Events, Head: &a.Heads[0]})
	WriteFrame(&buf, Frame{End: true, Head: &a.Heads[0]})
	f.Add(buf.Bytes())
	buf.Reset()
	WriteFrame(&buf, Frame{End: true, Error: "boom"})
	f.Add(buf.Bytes())
	buf.Reset()
	WriteFrame(&buf, Frame{Blocks: []chain.Block{{First: 7, Data: []byte{1, 2}}}, Head: &a.Heads[0], End: true})
	f.Add(buf.Bytes())
	f.Add(binary.AppendUvarint(nil, 1<<62))
	f.Add([]byte{0x05, 0xa1, 0x01, 0x80})
	stream := a.Heads[0].Stream
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for range 8 {
			fr, err := ReadFrame(r, stream, 4096)
			if err != nil {
				if !errors.Is(err, chain.ErrMalformed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			for _, e := range fr.Events {
				if e.Stream != stream {
					t.Fatal("event without the request's stream")
				}
			}
			// Feeding anything decoded to a verifier must not panic.
			v := chain.NewVerifier(stream, -1, 0, chain.Genesis)
			if v.Add(fr.Events) == nil && fr.Head != nil {
				v.Checkpoint(*fr.Head)
			}
		}
	})
}

// Random chains verify, and flipping any single byte of their wire form is
// either refused by the decoder or by verification.
func TestChainProperty(t *testing.T) {
	o := newOrigin(t)
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 40 {
		n := 1 + r.IntN(20)
		have := int64(r.IntN(3)) - 1
		var prev chain.Hash
		var lamport uint64
		if have >= 0 {
			base := randomEvents(r, o.Stream, 0, 0, int(have)+1)
			prev, lamport = chain.LinkAll(chain.Genesis, base), base[len(base)-1].Lamport
		}
		evs := randomEvents(r, o.Stream, uint64(have+1), lamport, n)
		head := o.Sign(t, prev, evs)
		if err := chain.VerifyRange(prev, have, evs, head); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var buf bytes.Buffer
		if err := WriteFrame(&buf, Frame{Events: evs, Head: &head, End: true}); err != nil {
			t.Fatal(err)
		}
		wire := buf.Bytes()
		for range 60 {
			tampered := slices.Clone(wire)
			i := r.IntN(len(tampered))
			tampered[i] ^= byte(1 + r.IntN(255))
			f, err := ReadFrame(bytes.NewReader(tampered), o.Stream, DefaultLimits.MaxFrameBytes)
			if err != nil {
				continue
			}
			if f.Head == nil {
				continue // the head was lost: nothing can be stored
			}
			if reflect.DeepEqual(f.Events, evs) && reflect.DeepEqual(*f.Head, head) {
				continue // a flip in a field that does not carry data
			}
			if err := chain.VerifyRange(prev, have, f.Events, *f.Head); err == nil {
				t.Fatalf("round %d: flipping byte %d verified", round, i)
			}
		}
	}
}
