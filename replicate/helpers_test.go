package replicate

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/chain/chaintest"
	"github.com/edgelog/edgelog/event"
)

// origin is a node key able to write and sign its stream 0.
type origin struct {
	key    crypto.PrivKey
	signer ed25519.PrivateKey // key, in the form chain signs with
	id     peer.ID
	stream event.StreamID
}

func newOrigin(t testing.TB) origin {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := key.Raw()
	if err != nil {
		t.Fatal(err)
	}
	return origin{key: key, signer: ed25519.PrivateKey(raw), id: id, stream: event.NewStreamID(id.String(), 0)}
}

// randomEvents makes n events of stream from offset first, Lamport times
// increasing above lamport.
var randomEvents = chaintest.RandomEvents

func (o origin) sign(t testing.TB, prev chain.Hash, events []event.Event) chain.SignedHead {
	t.Helper()
	last := events[len(events)-1]
	sh, err := chain.SignHead(o.signer, chain.Head{Stream: o.stream, Offset: last.Offset, Lamport: last.Lamport, Hash: chain.LinkAll(prev, events)})
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// memStream is one stream held by a memStore.
type memStream struct {
	events []event.Event
	hashes []chain.Hash
	heads  map[uint64]chain.SignedHead // checkpoints by offset
}

// memStore is an in-memory Store for tests.
type memStore struct {
	mu      sync.Mutex
	streams map[event.StreamID]*memStream
	lamport uint64
	changed chan struct{}
	ingests int
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{streams: map[event.StreamID]*memStream{}, changed: make(chan struct{})}
}

func (m *memStore) Heads(ctx context.Context) (map[event.StreamID]chain.SignedHead, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[event.StreamID]chain.SignedHead{}
	for s, ms := range m.streams {
		if n := len(ms.events); n > 0 {
			out[s] = ms.heads[uint64(n-1)]
		}
	}
	return out, nil
}

func (m *memStore) ReadRange(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
	return func(yield func(chain.Entry, error) bool) {
		m.mu.Lock()
		ms := m.streams[stream]
		var entries []chain.Entry
		if ms != nil {
			for off := uint64(from + 1); off <= to && off < uint64(len(ms.events)); off++ {
				en := chain.Entry{Event: ms.events[off]}
				if h, ok := ms.heads[off]; ok {
					en.Head = &h
				}
				entries = append(entries, en)
			}
		}
		m.mu.Unlock()
		for _, en := range entries {
			if err := ctx.Err(); err != nil {
				yield(chain.Entry{}, err)
				return
			}
			if !yield(en, nil) {
				return
			}
		}
	}
}

func (m *memStore) Ingest(ctx context.Context, events []event.Event, head chain.SignedHead) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := m.streams[head.Stream]
	if ms == nil {
		ms = &memStream{heads: map[uint64]chain.SignedHead{}}
		m.streams[head.Stream] = ms
	}
	if len(events) == 0 || events[0].Offset != uint64(len(ms.events)) || events[len(events)-1].Offset != head.Offset {
		return fmt.Errorf("%w: have %d, got from %d", chain.ErrStale, len(ms.events)-1, events[0].Offset)
	}
	prev := chain.Genesis
	if n := len(ms.hashes); n > 0 {
		prev = ms.hashes[n-1]
	}
	for _, e := range events {
		prev = chain.Link(prev, &e)
		ms.events = append(ms.events, e)
		ms.hashes = append(ms.hashes, prev)
	}
	ms.heads[head.Offset] = head
	m.lamport = max(m.lamport, head.Lamport)
	m.ingests++
	close(m.changed)
	m.changed = make(chan struct{})
	return nil
}

func (m *memStore) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// publish appends n new events to o's stream in m as one signed batch.
func (m *memStore) publish(t testing.TB, r *rand.Rand, o origin, n int) []event.Event {
	t.Helper()
	m.mu.Lock()
	ms := m.streams[o.stream]
	prev, first := chain.Genesis, uint64(0)
	if ms != nil && len(ms.events) > 0 {
		prev, first = ms.hashes[len(ms.hashes)-1], uint64(len(ms.events))
	}
	evs := randomEvents(r, o.stream, first, m.lamport, n)
	m.mu.Unlock()
	if err := m.Ingest(context.Background(), evs, o.sign(t, prev, evs)); err != nil {
		t.Fatal(err)
	}
	return evs
}

// events returns a copy of stream's events in m.
func (m *memStore) events(s event.StreamID) []event.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ms := m.streams[s]; ms != nil {
		return slices.Clone(ms.events)
	}
	return nil
}

// head returns m's head of s as the Head a Fetch chains from, and its offset.
func (m *memStore) head(s event.StreamID) (chain.Head, int64) {
	hs, _ := m.Heads(context.Background())
	h, ok := hs[s]
	if !ok {
		return chain.Head{}, -1
	}
	return h.Head, int64(h.Offset)
}
