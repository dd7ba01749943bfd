package client_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/api/client"
	"github.com/edgelog/edgelog/api/internal/fakebackend"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

const testNode = "12D3KooWClientTest"

var manifest = client.Manifest{AppID: "com.example.client", DisplayName: "Client test", Version: "0.1"}

type env struct {
	be      *fakebackend.Backend
	ts      *httptest.Server
	now     atomic.Int64 // unix nanos of the server's clock
	auths   atomic.Int64 // POST /auth calls seen
	handler atomic.Pointer[http.Handler]
	key     ed25519.PrivateKey
}

// newEnv serves an api.Server over a fake backend, counting auth calls.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{be: fakebackend.New(testNode)}
	e.now.Store(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	e.swapServer(t)
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == api.PathAuth {
			e.auths.Add(1)
		}
		(*e.handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(e.ts.Close)
	return e
}

// swapServer replaces the server with one using a fresh key, as if the node
// had been reset.
func (e *env) swapServer(t *testing.T) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(e.be, api.Config{
		Key:     key,
		DevMode: true,
		Logger:  slog.New(slog.DiscardHandler),
		Now:     func() time.Time { return time.Unix(0, e.now.Load()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	e.handler.Store(&h)
	e.key = key
}

func (e *env) client(t *testing.T, m client.Manifest) *client.Client {
	t.Helper()
	c, err := client.New(e.ts.URL, m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// collect drains a sequence, failing on an error.
func collect(t *testing.T, seq func(yield func(client.Line, error) bool)) []client.Line {
	t.Helper()
	var out []client.Line
	for l, err := range seq {
		if err != nil {
			t.Fatalf("stream error after %d lines: %v", len(out), err)
		}
		out = append(out, l)
	}
	return out
}

func TestPublishQueryRoundTrip(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, manifest)
	ctx := t.Context()
	metas, err := c.Publish(ctx, []client.PublishEvent{
		{Tags: []string{"machine:7", "temperature"}, Payload: json.RawMessage(`{"value":42.5}`)},
		{Tags: []string{"machine:7"}, Payload: json.RawMessage(`"second"`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 2 || metas[0].Stream != e.be.Stream() || metas[1].Offset != 1 || metas[1].Lamport <= metas[0].Lamport {
		t.Fatalf("metas = %+v", metas)
	}
	if app, _, _ := e.be.LastPublish(); app != manifest.AppID {
		t.Errorf("published as %q", app)
	}

	lines := collect(t, c.Query(ctx, client.QueryRequest{Query: "FROM 'machine:7'"}))
	if len(lines) != 3 {
		t.Fatalf("got %d lines", len(lines))
	}
	ev := lines[0].Event
	if lines[0].Type != api.LineEvent || ev == nil || ev.AppID != manifest.AppID || ev.Offset != 0 ||
		strings.Join(ev.Tags, ",") != "machine:7,temperature" || string(ev.Payload) != `{"value":42.5}` ||
		ev.Timestamp != metas[0].Timestamp || ev.Key() != (lamport.EventKey{Lamport: metas[0].Lamport, Stream: string(metas[0].Stream), Offset: 0}) {
		t.Errorf("first event = %+v", ev)
	}
	if string(lines[1].Event.Payload) != `"second"` {
		t.Errorf("second payload = %s", lines[1].Event.Payload)
	}
	if !strings.HasPrefix(string(lines[0].Raw), `{"type":"event",`) || strings.HasSuffix(string(lines[0].Raw), "\n") {
		t.Errorf("Raw = %q", lines[0].Raw)
	}
	last := lines[2]
	if last.Type != api.LineOffsets || last.Offsets[e.be.Stream()] != 1 || last.Event != nil {
		t.Errorf("final line = %+v", last)
	}

	// Bounds reach the node as given, and an empty upper bound stays empty.
	lines = collect(t, c.Query(ctx, client.QueryRequest{LowerBound: event.OffsetMap{e.be.Stream(): 1}, Query: "FROM allEvents", Order: "desc"}))
	if q := e.be.LastQuery(); q.Lower[e.be.Stream()] != 1 || q.Order != event.Desc || q.Upper != nil {
		t.Errorf("backend query = %+v", q)
	}
	// The fake backend applies no bounds: the client passes them on and
	// keeps the order the node answers in.
	if len(lines) != 3 || lines[0].Event == nil || lines[0].Event.Offset != 1 || lines[1].Event == nil || lines[1].Event.Offset != 0 || lines[2].Type != api.LineOffsets {
		t.Errorf("desc query answered %d lines, want offsets 1, 0, then the offsets line", len(lines))
	}
	collect(t, c.Query(ctx, client.QueryRequest{UpperBound: event.OffsetMap{}, Query: "FROM allEvents"}))
	if q := e.be.LastQuery(); q.Upper == nil || len(q.Upper) != 0 {
		t.Errorf("empty upper bound arrived as %#v", q.Upper)
	}
	if e.auths.Load() != 1 {
		t.Errorf("%d auth calls, want 1", e.auths.Load())
	}
}

func TestNodeEndpoints(t *testing.T) {
	e := newEnv(t)
	// Without a scheme, and with a trailing base path.
	for _, base := range []string{strings.TrimPrefix(e.ts.URL, "http://"), e.ts.URL + "/api/v2/"} {
		c, err := client.New(base, manifest)
		if err != nil {
			t.Fatal(err)
		}
		id, err := c.NodeID(t.Context())
		if err != nil || id != testNode {
			t.Fatalf("NodeID via %q = %q, %v", base, id, err)
		}
	}
	c := e.client(t, manifest)
	info, err := c.Info(t.Context())
	if err != nil || !reflect.DeepEqual(info, e.be.NodeInfo) {
		t.Fatalf("Info = %+v, %v; want %+v", info, err, e.be.NodeInfo)
	}
	e.be.ToReplicate = map[event.StreamID]uint64{"12D3KooWOther-1": 3}
	if _, err := c.Publish(t.Context(), []client.PublishEvent{{Tags: []string{"a"}, Payload: json.RawMessage(`1`)}}); err != nil {
		t.Fatal(err)
	}
	offs, err := c.Offsets(t.Context())
	if err != nil || offs.Present[e.be.Stream()] != 0 || len(offs.Present) != 1 || offs.ToReplicate["12D3KooWOther-1"] != 3 {
		t.Fatalf("Offsets = %+v, %v", offs, err)
	}
	for _, bad := range []string{"", "ftp://x", "http://", "http://h/?q=1"} {
		if _, err := client.New(bad, manifest); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	if _, err := client.New(e.ts.URL, client.Manifest{}); err == nil {
		t.Error("manifest without app id accepted")
	}
}

func TestTokenRenewal(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, manifest)
	ctx := t.Context()
	if _, err := c.NodeID(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NodeID(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.auths.Load(); n != 1 {
		t.Fatalf("%d auth calls before expiry, want 1", n)
	}
	e.now.Add(int64(api.DefaultTokenTTL + time.Minute))
	if _, err := c.Publish(ctx, []client.PublishEvent{{Tags: []string{"a"}, Payload: json.RawMessage(`{}`)}}); err != nil {
		t.Fatalf("publish after expiry: %v", err)
	}
	if n := e.auths.Load(); n != 2 {
		t.Fatalf("%d auth calls after expiry, want 2", n)
	}
	// The publish was sent again with its body after the renewal.
	if _, drafts, calls := e.be.LastPublish(); calls != 1 || len(drafts) != 1 {
		t.Fatalf("backend saw %d publishes, drafts %+v", calls, drafts)
	}
	// A stream renews too.
	e.now.Add(int64(api.DefaultTokenTTL + time.Minute))
	if lines := collect(t, c.Query(ctx, client.QueryRequest{Query: "FROM allEvents"})); len(lines) != 2 {
		t.Fatalf("query after expiry: %d lines", len(lines))
	}
	// A clock set back (by days) keeps the token alive: no renewal.
	e.now.Add(-int64(72 * time.Hour))
	if _, err := c.NodeID(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.auths.Load(); n != 3 {
		t.Fatalf("%d auth calls after the clock went back, want 3", n)
	}
	// A node whose key changed rejects the token as invalid: renew as well.
	e.swapServer(t)
	if _, err := c.Info(ctx); err != nil {
		t.Fatalf("after key change: %v", err)
	}
	if n := e.auths.Load(); n != 4 {
		t.Fatalf("%d auth calls, want 4", n)
	}
}

func TestConcurrentFirstCallsShareOneToken(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, manifest)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			if _, err := c.NodeID(t.Context()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.auths.Load(); n != 1 {
		t.Errorf("%d auth calls for concurrent first calls, want 1", n)
	}
}

func TestTypedErrors(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, manifest)
	e.be.PublishErr = fmt.Errorf("disk: %w", event.ErrStorageFull)
	_, err := c.Publish(t.Context(), []client.PublishEvent{{Tags: []string{"a"}, Payload: json.RawMessage(`1`)}})
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusInsufficientStorage || apiErr.Code != api.CodeStorageFull {
		t.Fatalf("err = %#v", err)
	}
	if !errors.Is(err, event.ErrStorageFull) {
		t.Error("errors.Is(err, event.ErrStorageFull) = false")
	}

	// Bad input is caught by the server before any stream starts.
	for l, err := range c.Query(t.Context(), client.QueryRequest{Query: "FROM nonsense"}) {
		if !errors.As(err, &apiErr) || apiErr.Code != api.CodeBadQuery || !strings.Contains(apiErr.Message, "column") {
			t.Fatalf("bad query: line %+v, err %v", l, err)
		}
		if !errors.Is(err, event.ErrInvalid) {
			t.Error("bad query is not ErrInvalid")
		}
	}
	_, err = c.Publish(t.Context(), []client.PublishEvent{{Tags: []string{""}, Payload: json.RawMessage(`1`)}})
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != api.CodeBadRequest {
		t.Fatalf("empty tag: %v", err)
	}

	// An app the node does not allow: 403 and no renewal loop.
	before := e.auths.Load()
	other := e.client(t, client.Manifest{AppID: "org.unknown.app"})
	_, err = other.NodeID(t.Context())
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden || apiErr.Code != api.CodeAppUnauthorized {
		t.Fatalf("unauthorized app: %v", err)
	}
	if n := e.auths.Load() - before; n != 1 {
		t.Errorf("%d auth calls for an unauthorized app, want 1", n)
	}
}

func TestNonJSONErrorBody(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway from proxy", http.StatusBadGateway)
	}))
	defer ts.Close()
	c, err := client.New(ts.URL, manifest)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.NodeID(t.Context())
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadGateway || apiErr.Code != "" || !strings.Contains(apiErr.Message, "proxy") {
		t.Fatalf("err = %#v", err)
	}
}

// rawServer answers auth and streams body for every other path.
func rawServer(t *testing.T, body string) *client.Client {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == api.PathAuth {
			_, _ = io.WriteString(w, `{"token":"t"}`)
			return
		}
		w.Header().Set("Content-Type", api.ContentTypeNDJSON)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(ts.Close)
	c, err := client.New(ts.URL, manifest)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestUnknownLineTypesPassThrough(t *testing.T) {
	unknown1 := `{"type":"futureThing","x":[1,2]}`
	unknown2 := `{"type":"other","offsets":"not-a-map","lamport":"clash"}`
	body := unknown1 + "\n" +
		`{"type":"event","lamport":1,"stream":"a-0","offset":0,"timestamp":7,"tags":["t"],"appId":"com.example.a","payload":{"k":"v"},"newField":true}` + "\r\n" +
		"\n" +
		unknown2 + "\n" +
		`{"type":"diagnostic","severity":"warning","message":"slow"}` + "\n" +
		`{"type":"offsets","offsets":{"a-0":0}}` + "\n"
	c := rawServer(t, body)
	lines := collect(t, c.Query(t.Context(), client.QueryRequest{Query: "FROM allEvents"}))
	if len(lines) != 5 {
		t.Fatalf("got %d lines: %+v", len(lines), lines)
	}
	if lines[0].Type != "futureThing" || string(lines[0].Raw) != unknown1 || lines[0].Event != nil {
		t.Errorf("unknown line = %+v", lines[0])
	}
	if lines[1].Event == nil || string(lines[1].Event.Payload) != `{"k":"v"}` || strings.HasSuffix(string(lines[1].Raw), "\r") {
		t.Errorf("event line = %+v", lines[1])
	}
	if lines[2].Type != "other" || string(lines[2].Raw) != unknown2 {
		t.Errorf("clashing unknown line = %+v", lines[2])
	}
	if lines[3].Severity != "warning" || lines[3].Message != "slow" {
		t.Errorf("diagnostic = %+v", lines[3])
	}
	if lines[4].Offsets["a-0"] != 0 || len(lines[4].Offsets) != 1 {
		t.Errorf("offsets = %+v", lines[4])
	}
}

func TestTruncatedStreams(t *testing.T) {
	event0 := `{"type":"event","lamport":1,"stream":"a-0","offset":0,"timestamp":7,"tags":["t"],"appId":"com.example.a","payload":1}`
	cases := []struct{ name, body string }{
		{"query without final offsets", event0 + "\n"},
		{"cut line", event0 + "\n" + `{"type":"eve`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawServer(t, tc.body)
			var lines int
			var last error
			for _, err := range c.Query(t.Context(), client.QueryRequest{Query: "FROM allEvents"}) {
				if err != nil {
					last = err
					continue
				}
				lines++
			}
			if lines != 1 || !errors.Is(last, client.ErrStreamEnded) {
				t.Fatalf("lines %d, err %v", lines, last)
			}
		})
	}
	t.Run("malformed line", func(t *testing.T) {
		c := rawServer(t, `{"type":"event","lamport":"x"}`+"\n")
		var last error
		for _, err := range c.Query(t.Context(), client.QueryRequest{Query: "FROM allEvents"}) {
			last = err
		}
		if last == nil || !strings.Contains(last.Error(), "malformed") {
			t.Fatalf("err %v", last)
		}
	})
	t.Run("error diagnostic ends a stream cleanly", func(t *testing.T) {
		c := rawServer(t, event0+"\n"+`{"type":"diagnostic","severity":"error","message":"boom"}`+"\n")
		lines := collect(t, c.Subscribe(t.Context(), client.SubscribeRequest{Query: "FROM allEvents"}))
		if len(lines) != 2 || lines[1].Message != "boom" {
			t.Fatalf("lines %+v", lines)
		}
	})
}

func TestLargePayloadRoundTrip(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, manifest)
	big := `"` + strings.Repeat("x", 3<<20) + `"`
	if _, err := c.Publish(t.Context(), []client.PublishEvent{{Tags: []string{"big"}, Payload: json.RawMessage(big)}}); err != nil {
		t.Fatal(err)
	}
	lines := collect(t, c.Query(t.Context(), client.QueryRequest{Query: "FROM 'big'"}))
	if len(lines) != 2 || string(lines[0].Event.Payload) != big {
		t.Fatalf("big payload did not survive (%d lines)", len(lines))
	}
}

func TestSubscribe(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, manifest)
	if _, err := c.Publish(t.Context(), []client.PublishEvent{{Tags: []string{"a"}, Payload: json.RawMessage(`0`)}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	live := event.Event{Lamport: 9, Stream: e.be.Stream(), Offset: 1, Tags: []string{"a"}, AppID: "com.example.x", Payload: []byte{0x18, 0x2a}} // CBOR 42
	var got []client.Line
	for l, err := range c.Subscribe(ctx, client.SubscribeRequest{Query: "FROM 'a'"}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l)
		if l.Type == api.LineOffsets {
			go func() { e.be.Live <- event.Item{Kind: event.KindEvent, Event: &live} }()
		}
		if len(got) == 3 {
			break
		}
	}
	if got[0].Event == nil || got[1].Type != api.LineOffsets || got[2].Event == nil || string(got[2].Event.Payload) != "42" {
		t.Fatalf("lines %+v", got)
	}
	// Stopping the iteration ends the request; the backend sees it.
	select {
	case <-e.be.Ended:
	case <-ctx.Done():
		t.Fatal("backend subscription not cancelled after the caller stopped")
	}
}

func TestSubscribeMonotonic(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, manifest)
	if _, err := c.Publish(t.Context(), []client.PublishEvent{{Tags: []string{"a"}, Payload: json.RawMessage(`0`)}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	newStart := lamport.EventKey{Lamport: 1, Stream: "12D3KooWOther-0", Offset: 5}
	var got []client.Line
	for l, err := range c.SubscribeMonotonic(ctx, client.MonotonicRequest{Session: "s", Query: "FROM 'a'"}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l)
		if l.Type == api.LineEvent {
			go func() { e.be.Live <- event.Item{Kind: event.KindTimeTravel, NewStart: newStart} }()
		}
	}
	if len(got) != 2 || !got[0].CaughtUp || got[1].Type != api.LineTimeTravel || got[1].NewStart != newStart {
		t.Fatalf("lines %+v", got)
	}
	if req := e.be.LastMonotonic(); req.Session != "s" || req.Lower == nil {
		t.Errorf("backend request = %+v", req)
	}
}

func TestContextCancelEndsStream(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, manifest)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var last error
	n := 0
	for l, err := range c.Subscribe(ctx, client.SubscribeRequest{Query: "FROM allEvents"}) {
		n++
		if err != nil {
			last = err
			continue
		}
		if l.Type == api.LineOffsets {
			cancel()
		}
	}
	if !errors.Is(last, context.Canceled) || n != 2 {
		t.Fatalf("after %d items: %v", n, last)
	}
}
