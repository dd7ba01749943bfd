package api_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/api/client"
	"github.com/edgelog/edgelog/api/internal/fakebackend"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// bookBackend is the fake backend plus publish options and consumers.
type bookBackend struct {
	*fakebackend.Backend
	mu        sync.Mutex
	opts      event.PublishOptions
	err       error
	consumers map[string]event.ConsumerStatus
}

func (b *bookBackend) PublishWith(ctx context.Context, appID string, drafts []event.Draft, opts event.PublishOptions) ([]event.Meta, error) {
	b.mu.Lock()
	b.opts = opts
	err := b.err
	b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return b.Publish(ctx, appID, drafts)
}

func (b *bookBackend) Consumer(_ context.Context, appID, name string) (event.ConsumerStatus, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.consumers[appID+"/"+name]
	return s, ok, nil
}

func (b *bookBackend) PutConsumer(_ context.Context, appID string, s event.ConsumerStatus) error {
	if err := event.ValidateConsumerStatus(&s); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s.AppID = appID
	b.consumers[appID+"/"+s.Name] = s
	return nil
}

func serve(t *testing.T, b api.Backend) *client.Client {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	srv, err := api.New(b, api.Config{Key: key, DevMode: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	c, err := client.New(ts.URL, client.Manifest{AppID: "com.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var oneEvent = []client.PublishEvent{{Tags: []string{"order:1"}, Payload: json.RawMessage(`{"a":1}`)}}

func TestPublishOptionsOverHTTP(t *testing.T) {
	be := &bookBackend{Backend: fakebackend.New("12D3KooWTest"), consumers: map[string]event.ConsumerStatus{}}
	c := serve(t, be)
	ctx := t.Context()
	after := lamport.EventKey{Lamport: 7, Stream: "12D3KooWTest-0", Offset: 3}
	if _, err := c.PublishWith(ctx, api.PublishRequest{Data: oneEvent, IdempotencyKey: "k1", IfNoneMatchSince: &api.Guard{Query: "FROM 'order:1'", After: after}}); err != nil {
		t.Fatal(err)
	}
	be.mu.Lock()
	got := be.opts
	be.mu.Unlock()
	if got.IdempotencyKey != "k1" || got.Guard == nil || got.Guard.After != after || got.Guard.Query.String() != "FROM 'order:1'" {
		t.Fatalf("backend got %+v", got)
	}

	// A conflict is 409 ERR_CONFLICT with the events.
	be.mu.Lock()
	be.err = &event.ConflictError{Changed: []event.Event{{Lamport: 9, Stream: "12D3KooWTest-0", Offset: 4, Tags: []string{"order:1"}, AppID: "x", Payload: []byte{0x01}}}, More: true}
	be.mu.Unlock()
	_, err := c.PublishWith(ctx, api.PublishRequest{Data: oneEvent, IfNoneMatchSince: &api.Guard{Query: "FROM 'order:1'"}})
	ae, ok := errors.AsType[*api.Error](err)
	if !ok || ae.Status != http.StatusConflict || ae.Code != api.CodeConflict || !errors.Is(err, event.ErrConflict) {
		t.Fatalf("conflict: %v", err)
	}
	if ae.Conflict == nil || len(ae.Conflict.Changed) != 1 || !ae.Conflict.More || ae.Conflict.Changed[0].Offset != 4 || string(ae.Conflict.Changed[0].Payload) != "1" {
		t.Fatalf("conflict details %+v", ae.Conflict)
	}
	be.mu.Lock()
	be.err = errors.Join(event.ErrIdempotencyMismatch, errors.New("key k1"))
	be.mu.Unlock()
	_, err = c.PublishWith(ctx, api.PublishRequest{Data: oneEvent, IdempotencyKey: "k1"})
	if ae, ok := errors.AsType[*api.Error](err); !ok || ae.Status != http.StatusConflict || ae.Code != api.CodeIdempotencyMismatch || !errors.Is(err, event.ErrIdempotencyMismatch) {
		t.Fatalf("mismatch: %v", err)
	}

	for name, c2 := range map[string]struct {
		opts api.PublishRequest
		code string
	}{
		"long key":   {api.PublishRequest{IdempotencyKey: strings.Repeat("k", 257)}, api.CodeBadRequest},
		"bad query":  {api.PublishRequest{IfNoneMatchSince: &api.Guard{Query: "FROM ("}}, api.CodeBadQuery},
		"no query":   {api.PublishRequest{IfNoneMatchSince: &api.Guard{}}, api.CodeBadQuery},
		"bad stream": {api.PublishRequest{IfNoneMatchSince: &api.Guard{Query: "FROM allEvents", After: lamport.EventKey{Lamport: 1, Stream: "nope"}}}, api.CodeBadRequest},
	} {
		req := c2.opts
		req.Data = oneEvent
		_, err := c.PublishWith(ctx, req)
		if ae, ok := errors.AsType[*api.Error](err); !ok || ae.Status != http.StatusBadRequest || ae.Code != c2.code {
			t.Errorf("%s: %v, want 400 %s", name, err, c2.code)
		}
	}

	// A backend without options refuses them rather than ignoring them.
	plain := serve(t, fakebackend.New("12D3KooWTest"))
	if _, err := plain.PublishWith(ctx, api.PublishRequest{Data: oneEvent, IdempotencyKey: "k"}); !errors.Is(err, event.ErrInvalid) {
		t.Fatalf("options on a plain backend: %v, want 400", err)
	}
	if _, err := plain.Publish(ctx, oneEvent); err != nil {
		t.Fatal(err)
	}
}

func TestConsumersOverHTTP(t *testing.T) {
	be := &bookBackend{Backend: fakebackend.New("12D3KooWTest"), consumers: map[string]event.ConsumerStatus{}}
	c := serve(t, be)
	ctx := t.Context()
	if _, found, err := c.Consumer(ctx, "mailer"); found || err != nil {
		t.Fatalf("unknown consumer: %v, %v", found, err)
	}
	st := event.ConsumerStatus{Name: "mailer", Checkpoint: event.OffsetMap{"12D3KooWTest-0": 5}, Running: true,
		Blocked: []event.BlockedStream{{Stream: "12D3KooWTest-0", Event: lamport.EventKey{Lamport: 3, Stream: "12D3KooWTest-0", Offset: 6}, Attempts: 5, Error: "boom"}}}
	if err := c.PutConsumer(ctx, st); err != nil {
		t.Fatal(err)
	}
	got, found, err := c.Consumer(ctx, "mailer")
	if err != nil || !found || got.AppID != "com.example.test" || got.Checkpoint["12D3KooWTest-0"] != 5 || len(got.Blocked) != 1 || got.Blocked[0] != st.Blocked[0] {
		t.Fatalf("Consumer = %+v, %v, %v", got, found, err)
	}
	if err := c.PutConsumer(ctx, event.ConsumerStatus{}); !errors.Is(err, event.ErrInvalid) {
		t.Fatalf("nameless consumer: %v, want 400", err)
	}
	if _, _, err := c.Consumer(ctx, ""); !errors.Is(err, event.ErrInvalid) {
		t.Fatalf("empty name: %v, want 400", err)
	}
	plain := serve(t, fakebackend.New("12D3KooWTest"))
	if err := plain.PutConsumer(ctx, st); err == nil {
		t.Fatal("a backend without consumers accepted one")
	}
}
