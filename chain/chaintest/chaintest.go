// Package chaintest makes signed streams for the tests of the packages that
// store and move them.
package chaintest

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// Origin is a node key able to write and sign its stream 0.
type Origin struct {
	Key    ed25519.PrivateKey
	ID     string // the key's NodeID
	Stream event.StreamID
}

// NewOrigin makes an Origin with a fresh key.
func NewOrigin(t testing.TB) Origin {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := chain.NodeID(key.Public().(ed25519.PublicKey))
	return Origin{Key: key, ID: id, Stream: event.NewStreamID(id, 0)}
}

// Sign signs the head after events, which follow the chain hash prev.
func (o Origin) Sign(t testing.TB, prev chain.Hash, events []event.Event) chain.SignedHead {
	t.Helper()
	return SignAfter(t, o.Key, o.Stream, prev, events)
}

// SignAfter signs, with key, stream's head after events, which follow the
// chain hash prev.
func SignAfter(t testing.TB, key ed25519.PrivateKey, stream event.StreamID, prev chain.Hash, events []event.Event) chain.SignedHead {
	t.Helper()
	last := events[len(events)-1]
	sh, err := chain.SignHead(key, chain.Head{Stream: stream, Offset: last.Offset, Lamport: last.Lamport, Hash: chain.LinkAll(prev, events)})
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// RandomEvents makes n events of stream from offset first, Lamport times
// increasing above lamport, with random tags (some repeated), timestamps
// and payloads.
func RandomEvents(r *mrand.Rand, stream event.StreamID, first uint64, lamport uint64, n int) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		lamport += 1 + uint64(r.IntN(3))
		tags := []string{"t" + fmt.Sprint(r.IntN(4)), "machine:" + fmt.Sprint(r.IntN(3))}
		if r.IntN(3) == 0 {
			tags = append(tags, tags[0])
		}
		payload := make([]byte, 1+r.IntN(40))
		for j := range payload {
			payload[j] = byte(r.Uint32())
		}
		out[i] = event.Event{
			Lamport: lamport, Stream: stream, Offset: first + uint64(i),
			Timestamp: r.Int64N(1<<50) - 1<<40, Tags: tags, AppID: "com.example.app", Payload: payload,
		}
	}
	return out
}
