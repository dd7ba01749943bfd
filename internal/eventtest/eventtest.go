// Package eventtest holds test helpers that write and read events through
// the public methods of an event store (a store.Store or a node.Node), so
// the tests of both share one copy.
package eventtest

import (
	"context"
	"iter"
	"math/rand/v2"
	"testing"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// AppID is the app the helpers publish as.
const AppID = "com.example.test"

// Store is what the helpers use of an event store.
type Store interface {
	Publish(ctx context.Context, appID string, drafts []event.Draft) ([]event.Meta, error)
	Query(ctx context.Context, req event.QueryRequest) iter.Seq2[event.Item, error]
	Offsets(ctx context.Context) (event.Offsets, error)
}

// Payload encodes v as an event payload.
func Payload(t testing.TB, v any) []byte {
	t.Helper()
	b, err := event.MarshalCBOR(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Publish publishes one event with tags (its payload: the tags).
func Publish(t testing.TB, s Store, tags ...string) event.Meta {
	t.Helper()
	m, err := s.Publish(context.Background(), AppID, []event.Draft{{Tags: tags, Payload: Payload(t, tags)}})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return m[0]
}

// PublishN publishes count events with tags, batch to a publish.
func PublishN(t testing.TB, s Store, count, batch int, tags ...string) []event.Meta {
	t.Helper()
	var out []event.Meta
	p := Payload(t, map[string]int{"value": 42})
	for done := 0; done < count; {
		k := min(batch, count-done)
		drafts := make([]event.Draft, k)
		for i := range drafts {
			drafts[i] = event.Draft{Tags: tags, Payload: p}
		}
		m, err := s.Publish(context.Background(), AppID, drafts)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		out = append(out, m...)
		done += k
	}
	return out
}

// Collect runs a query and returns its events and final offsets.
func Collect(t testing.TB, seq iter.Seq2[event.Item, error]) ([]*event.Event, event.OffsetMap, error) {
	t.Helper()
	var evs []*event.Event
	var offs event.OffsetMap
	for it, err := range seq {
		if err != nil {
			return evs, offs, err
		}
		switch it.Kind {
		case event.KindEvent:
			evs = append(evs, it.Event)
		case event.KindOffsets:
			offs = it.Offsets
		}
	}
	return evs, offs, nil
}

// CollectItems runs a query and returns all its items and final offsets.
func CollectItems(seq iter.Seq2[event.Item, error]) ([]event.Item, event.OffsetMap, error) {
	var items []event.Item
	var offs event.OffsetMap
	for it, err := range seq {
		if err != nil {
			return items, offs, err
		}
		if it.Kind == event.KindOffsets {
			offs = it.Offsets
		}
		items = append(items, it)
	}
	return items, offs, nil
}

// Query runs req on s and returns its events, failing t on an error.
func Query(t testing.TB, s Store, req event.QueryRequest) []*event.Event {
	t.Helper()
	evs, _, err := Collect(t, s.Query(context.Background(), req))
	if err != nil {
		t.Fatalf("query %q: %v", req.Query.Source, err)
	}
	return evs
}

// Keys returns the events' sort keys.
func Keys(evs []*event.Event) []lamport.EventKey {
	out := make([]lamport.EventKey, len(evs))
	for i, e := range evs {
		out[i] = e.Key()
	}
	return out
}

// Stats returns the statistics s reports for stream.
func Stats(t testing.TB, s Store, stream event.StreamID) event.StreamStats {
	t.Helper()
	o, err := s.Offsets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return o.Streams[stream]
}

// Held queries stream and checks it holds exactly floor..present, gapless.
func Held(t testing.TB, s Store, stream event.StreamID) (floor, count uint64) {
	t.Helper()
	items, _, err := CollectItems(s.Query(context.Background(), event.QueryRequest{Query: aql.MustParse("FROM allEvents"), Order: event.StreamAsc}))
	if err != nil {
		t.Fatal(err)
	}
	var offs []uint64
	for _, it := range items {
		if it.Kind == event.KindEvent && it.Event.Stream == stream {
			offs = append(offs, it.Event.Offset)
		}
	}
	for i := 1; i < len(offs); i++ {
		if offs[i] != offs[i-1]+1 {
			t.Fatalf("stream %s has a gap: %d then %d", stream, offs[i-1], offs[i])
		}
	}
	if len(offs) == 0 {
		return 0, 0
	}
	return offs[0], uint64(len(offs))
}

// Telemetry is a 100-byte CBOR payload that looks like telemetry: a
// few fields that vary with i and some random text, so compression sees
// realistic (not identical) data.
func Telemetry(t testing.TB, i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 99))
	note := make([]byte, 24)
	for j := range note {
		note[j] = "abcdefghijklmnopqrstuvwxyz0123456789"[r.IntN(36)]
	}
	v := map[string]any{
		"machine": i % 100,
		"seq":     i,
		"temp":    20 + r.Float64()*10,
		"status":  []string{"running", "idle", "fault"}[r.IntN(3)],
		"note":    string(note),
	}
	p, err := event.MarshalCBOR(v)
	if err != nil {
		t.Fatal(err)
	}
	for len(p) < 100 { // pad the note to exactly 100 bytes
		note = append(note, 'x')
		v["note"] = string(note)
		p, _ = event.MarshalCBOR(v)
	}
	return p
}
