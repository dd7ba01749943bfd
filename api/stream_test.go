package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// addEvents stores n events with payload {"i":i} and tags "all" and
// "even"/"odd".
func addEvents(t *testing.T, h *harness, n int) {
	t.Helper()
	for i := range n {
		tag := "odd"
		if i%2 == 0 {
			tag = "even"
		}
		h.be.Add(event.Event{
			Lamport: uint64(10 + i), Stream: h.be.Stream(), Offset: uint64(i),
			Timestamp: 1622108806233884 + int64(i), Tags: []string{"all", tag},
			AppID: "com.example.src", Payload: cborOf(t, fmt.Sprintf(`{"i":%d}`, i)),
		})
	}
}

func TestQuery(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	addEvents(t, h, 3)
	resp, body := h.do(http.MethodPost, PathQuery, tok, `{"query":"FROM 'even'","order":"asc","unknown":1}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != ContentTypeNDJSON {
		t.Errorf("Content-Type = %q", ct)
	}
	want := `{"type":"event","lamport":10,"stream":"12D3KooWTestNode-0","offset":0,"timestamp":1622108806233884,"tags":["all","even"],"appId":"com.example.src","payload":{"i":0}}
{"type":"event","lamport":12,"stream":"12D3KooWTestNode-0","offset":2,"timestamp":1622108806233886,"tags":["all","even"],"appId":"com.example.src","payload":{"i":2}}
{"type":"offsets","offsets":{"12D3KooWTestNode-0":2}}
`
	if string(body) != want {
		t.Fatalf("body:\n%s\nwant:\n%s", body, want)
	}
	req := h.be.LastQuery()
	if req.Order != event.Asc || req.Lower != nil || req.Upper != nil || req.Query == nil {
		t.Errorf("backend request = %+v", req)
	}

	t.Run("bounds and order reach the backend", func(t *testing.T) {
		resp, body := h.do(http.MethodPost, PathQuery, tok,
			`{"lowerBound":{"12D3KooWTestNode-0":0},"upperBound":{"12D3KooWTestNode-0":2,"12D3KooWOther-3":9},"query":"FROM allEvents","order":"desc"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		lines := jsonLines(t, body)
		if len(lines) != 4 || lines[0]["offset"] != float64(2) {
			t.Errorf("desc answer = %s", body)
		}
		req := h.be.LastQuery()
		if req.Order != event.Desc || req.Lower["12D3KooWTestNode-0"] != 0 || len(req.Lower) != 1 ||
			req.Upper["12D3KooWTestNode-0"] != 2 || req.Upper["12D3KooWOther-3"] != 9 {
			t.Errorf("backend request = %+v", req)
		}
	})
	t.Run("empty upper bound stays empty, not absent", func(t *testing.T) {
		resp, body := h.do(http.MethodPost, PathQuery, tok, `{"upperBound":{},"query":"FROM allEvents","order":"stream-asc"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		req := h.be.LastQuery()
		if req.Upper == nil || len(req.Upper) != 0 || req.Order != event.StreamAsc {
			t.Errorf("backend request = %+v", req)
		}
	})
}

func TestStreamBadInput(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	type tc = streamCase
	common := []tc{
		{"malformed", `{"query":`, CodeBadRequest, "malformed"},
		{"query not a string", `{"query":5}`, CodeBadRequest, "query"},
		{"missing query", `{}`, CodeBadQuery, "query"},
		{"bad query", `{"query":"FROM nonsense"}`, CodeBadQuery, "line 1, column 6 (offset 5)"},
		{"bad query start", `{"query":"SELECT"}`, CodeBadQuery, "line 1, column 1"},
		{"bound key not a stream", `{"lowerBound":{"nope":1},"query":"FROM allEvents"}`, CodeBadRequest, "nope"},
		{"bound key bad number", `{"lowerBound":{"abc-x":1},"query":"FROM allEvents"}`, CodeBadRequest, "abc-x"},
		{"bound negative", `{"lowerBound":{"abc-0":-1},"query":"FROM allEvents"}`, CodeBadRequest, "lowerBound"},
		{"bound fraction", `{"lowerBound":{"abc-0":1.5},"query":"FROM allEvents"}`, CodeBadRequest, "lowerBound"},
		{"bound string", `{"lowerBound":{"abc-0":"1"},"query":"FROM allEvents"}`, CodeBadRequest, "lowerBound"},
		{"bound array", `{"lowerBound":[1],"query":"FROM allEvents"}`, CodeBadRequest, "lowerBound"},
	}
	paths := map[string][]tc{
		PathQuery: append(common[:len(common):len(common)],
			tc{"bad order", `{"query":"FROM allEvents","order":"random"}`, CodeBadRequest, "order"},
			tc{"order wrong type", `{"query":"FROM allEvents","order":1}`, CodeBadRequest, "order"},
			tc{"upper bound bad key", `{"upperBound":{"x":1},"query":"FROM allEvents"}`, CodeBadRequest, "upperBound"},
			tc{"upper bound negative", `{"upperBound":{"abc-0":-5},"query":"FROM allEvents"}`, CodeBadRequest, "upperBound"},
		),
		PathSubscribe: common[:len(common):len(common)],
		PathSubscribeMonotonic: append(withSession(common),
			tc{"missing session", `{"lowerBound":{},"query":"FROM allEvents"}`, CodeBadRequest, "session"},
			tc{"session wrong type", `{"session":1,"query":"FROM allEvents"}`, CodeBadRequest, "session"},
		),
	}
	for path, cases := range paths {
		for _, c := range cases {
			t.Run(path+"/"+c.name, func(t *testing.T) {
				resp, body := h.do(http.MethodPost, path, tok, c.body)
				wantError(t, resp, body, http.StatusBadRequest, c.code, c.mention)
			})
		}
	}
}

type streamCase struct{ name, body, code, mention string }

// withSession adds a session field to each case's body.
func withSession(cases []streamCase) []streamCase {
	out := make([]streamCase, len(cases))
	for i, c := range cases {
		if strings.HasPrefix(c.body, "{}") {
			c.body = `{"session":"s"}`
		} else if strings.HasPrefix(c.body, "{") {
			c.body = `{"session":"s",` + c.body[1:]
		}
		out[i] = c
	}
	return out
}

func TestStreamErrorMidStreamBecomesDiagnostic(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	addEvents(t, h, 2)
	h.be.MidStreamErr = fmt.Errorf("stream disappeared: %w", event.ErrUnavailable)
	resp, body := h.do(http.MethodPost, PathQuery, tok, `{"query":"FROM allEvents"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	lines := jsonLines(t, body)
	if len(lines) != 3 {
		t.Fatalf("answer: %s", body)
	}
	last := lines[2]
	if keysOf(last) != "message,severity,type" || last["type"] != "diagnostic" || last["severity"] != "error" ||
		!strings.Contains(last["message"].(string), "stream disappeared") {
		t.Errorf("last line = %v", last)
	}

	// An unexpected error shows no internal detail in the diagnostic.
	h.be.MidStreamErr = errors.New("secret internals")
	_, body = h.do(http.MethodPost, PathQuery, tok, `{"query":"FROM allEvents"}`)
	if strings.Contains(string(body), "secret") || !strings.Contains(string(body), `"message":"internal error"`) {
		t.Errorf("answer: %s", body)
	}
}

func TestUnconvertiblePayloadIsSkippedWithWarning(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	addEvents(t, h, 1)
	h.be.Add(event.Event{Lamport: 50, Stream: h.be.Stream(), Offset: 1, Tags: []string{"all"}, Payload: []byte{0xff, 0x00}})
	h.be.Add(event.Event{Lamport: 51, Stream: h.be.Stream(), Offset: 2, Tags: []string{"all"}, Payload: cborOf(t, `"ok"`)})
	_, body := h.do(http.MethodPost, PathQuery, tok, `{"query":"FROM allEvents"}`)
	lines := jsonLines(t, body)
	if len(lines) != 4 {
		t.Fatalf("answer: %s", body)
	}
	if lines[1]["type"] != "diagnostic" || lines[1]["severity"] != "warning" || !strings.Contains(lines[1]["message"].(string), "50/12D3KooWTestNode-0/1") {
		t.Errorf("line 2 = %v", lines[1])
	}
	if lines[2]["payload"] != "ok" || lines[3]["type"] != "offsets" {
		t.Errorf("events after the bad one: %s", body)
	}
}

func TestEventLineEncodingMatchesEncodingJSON(t *testing.T) {
	strs := []string{"plain", "", `quote"back\slash`, "ctl\x00\x1f\n\t", "<html>&amp;", "ünïcødé ✓ 😀", "bad\xffutf8", "\u2028\u2029"}
	for _, s := range strs {
		for _, cu := range []int{-1, 0, 1} {
			e := &event.Event{Lamport: 1<<64 - 1, Stream: event.StreamID(s), Offset: 42, Timestamp: -5, Tags: []string{s, "t"}, AppID: s, Payload: cborOf(t, `{"k":[1,2.5,"x"]}`)}
			got, err := appendEventLine(nil, e, cu)
			if err != nil {
				t.Fatal(err)
			}
			wl := EventLine{Type: LineEvent, Lamport: e.Lamport, Stream: e.Stream, Offset: e.Offset, Timestamp: e.Timestamp, Tags: e.Tags, AppID: e.AppID, Payload: json.RawMessage(`{"k":[1,2.5,"x"]}`)}
			if cu >= 0 {
				b := cu == 1
				wl.CaughtUp = &b
			}
			want, err := json.Marshal(wl)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want)+"\n" {
				t.Errorf("string %q caughtUp %d:\n got %s\nwant %s", s, cu, got, want)
			}
		}
	}
	// Tags must be an array even when empty.
	got, _ := appendEventLine(nil, &event.Event{Stream: "a-0", Payload: cborOf(t, `1`)}, -1)
	if !strings.Contains(string(got), `"tags":[]`) {
		t.Errorf("no-tag event: %s", got)
	}
}

// flushCounter is a ResponseWriter that counts flushes.
type flushCounter struct {
	*httptest.ResponseRecorder
	flushes atomic.Int64
}

func (f *flushCounter) Flush() {
	f.flushes.Add(1)
	f.ResponseRecorder.Flush()
}

func TestLargeQueryFlushesInBatches(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	const n = 30_000
	payload := cborOf(t, `{"v":1}`)
	h.be.QuerySeq = func(ctx context.Context, _ event.QueryRequest) iter.Seq2[event.Item, error] {
		return func(yield func(event.Item, error) bool) {
			e := event.Event{Stream: h.be.Stream(), Tags: []string{"t"}, AppID: "com.example.a", Payload: payload}
			for i := range n {
				e.Lamport, e.Offset = uint64(i+1), uint64(i)
				// The same Event is reused: the server must be done with it
				// when yield returns.
				if !yield(event.Item{Kind: event.KindEvent, Event: &e}, nil) {
					return
				}
			}
			yield(event.Item{Kind: event.KindOffsets, Offsets: event.OffsetMap{h.be.Stream(): n - 1}}, nil)
		}
	}
	req := httptest.NewRequest(http.MethodPost, PathQuery, strings.NewReader(`{"query":"FROM allEvents"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	w := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
	start := time.Now()
	h.srv.Handler().ServeHTTP(w, req)
	elapsed := time.Since(start)
	sc := bufio.NewScanner(w.Body)
	count := 0
	for sc.Scan() {
		var l EventLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if l.Type == LineEvent && l.Offset != uint64(count) {
			t.Fatalf("line %d has offset %d", count, l.Offset)
		}
		count++
	}
	if count != n+1 {
		t.Fatalf("got %d lines, want %d", count, n+1)
	}
	// At most one flush per minFlushInterval, plus the final one.
	limit := int64(elapsed/minFlushInterval) + 2
	if f := w.flushes.Load(); f > limit || f > n/20 {
		t.Fatalf("%d flushes for %d lines in %v (limit %d)", f, n, elapsed, min(limit, n/20))
	}
	t.Logf("%d lines, %d flushes, %v", n, w.flushes.Load(), elapsed)
}

// readLine reads one NDJSON line, failing after a deadline.
func readLine(t *testing.T, br *bufio.Reader) map[string]any {
	t.Helper()
	type res struct {
		line []byte
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		l, err := br.ReadBytes('\n')
		ch <- res{l, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading line: %v (got %q)", r.err, r.line)
		}
		var m map[string]any
		if err := json.Unmarshal(r.line, &m); err != nil {
			t.Fatalf("line %q: %v", r.line, err)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a line")
	}
	return nil
}

func TestSubscribe(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	addEvents(t, h, 2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.ts.URL+PathSubscribe, strings.NewReader(`{"lowerBound":{},"query":"FROM 'all'"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentTypeNDJSON {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	for i := range 2 {
		if l := readLine(t, br); l["type"] != "event" || l["offset"] != float64(i) || l["caughtUp"] != nil {
			t.Fatalf("backlog line %d = %v", i, l)
		}
	}
	if l := readLine(t, br); l["type"] != "offsets" || keysOf(l) != "offsets,type" {
		t.Fatalf("marker = %v", l)
	}
	// A live event arrives and is flushed promptly (the read would time
	// out otherwise).
	live := event.Event{Lamport: 99, Stream: h.be.Stream(), Offset: 2, Timestamp: 5, Tags: []string{"all"}, AppID: "com.example.live", Payload: cborOf(t, `[1,"two"]`)}
	h.be.Live <- event.Item{Kind: event.KindEvent, Event: &live}
	l := readLine(t, br)
	if l["type"] != "event" || l["lamport"] != float64(99) || l["appId"] != "com.example.live" ||
		keysOf(l) != "appId,lamport,offset,payload,stream,tags,timestamp,type" {
		t.Fatalf("live line = %v", l)
	}
	if p, _ := json.Marshal(l["payload"]); string(p) != `[1,"two"]` {
		t.Errorf("payload = %s", p)
	}
	// Unknown item kinds are skipped; a diagnostic passes through.
	h.be.Live <- event.Item{Kind: event.ItemKind(99)}
	h.be.Live <- event.Item{Kind: event.KindDiagnostic, Severity: "warning", Message: "lagging"}
	if l := readLine(t, br); l["type"] != "diagnostic" || l["message"] != "lagging" || l["severity"] != "warning" {
		t.Fatalf("diagnostic line = %v", l)
	}
	// The client goes away: the backend's context is cancelled.
	cancel()
	waitFor(t, h.be.Ended, "the backend's subscription context to be cancelled")
}

func TestSubscribeMonotonic(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	addEvents(t, h, 2)
	resp := h.open(http.MethodPost, PathSubscribeMonotonic, tok, `{"session":"s1","lowerBound":{"12D3KooWTestNode-0":0},"query":"FROM 'all'"}`)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	first, second := readLine(t, br), readLine(t, br)
	if first["caughtUp"] != false || second["caughtUp"] != true || keysOf(second) != "appId,caughtUp,lamport,offset,payload,stream,tags,timestamp,type" {
		t.Fatalf("lines %v, %v", first, second)
	}
	req := h.be.LastMonotonic()
	if req.Session != "s1" || req.Lower[h.be.Stream()] != 0 || len(req.Lower) != 1 {
		t.Errorf("backend request = %+v", req)
	}
	h.be.Live <- event.Item{Kind: event.KindTimeTravel, NewStart: lamport.EventKey{Lamport: 3, Stream: "12D3KooWOther-0", Offset: 4}}
	tt := readLine(t, br)
	b, _ := json.Marshal(tt)
	if string(b) != `{"newStart":{"lamport":3,"offset":4,"stream":"12D3KooWOther-0"},"type":"timeTravel"}` {
		t.Fatalf("time travel line = %s", b)
	}
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("after time travel: %q, %v", rest, err)
	}
}

func TestMonotonicWithoutLowerBound(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	h.be.StreamErr = fmt.Errorf("not running: %w", event.ErrUnavailable)
	resp, body := h.do(http.MethodPost, PathSubscribeMonotonic, tok, `{"session":"s1","query":"FROM 'all'"}`)
	wantError(t, resp, body, http.StatusServiceUnavailable, CodeUnavailable)
	if req := h.be.LastMonotonic(); req.Session != "s1" || len(req.Lower) != 0 {
		t.Errorf("backend request = %+v", req)
	}
}

func TestSubscriptionHeadersSentWithoutItems(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	// No events: the monotonic subscription yields nothing until live
	// items, yet the client gets its response headers.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.ts.URL+PathSubscribeMonotonic, strings.NewReader(`{"session":"s","query":"FROM allEvents"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatalf("no response headers: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentTypeNDJSON {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestServeShutdownEndsSubscriptions(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- h.srv.Serve(ctx, ln) }()

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+ln.Addr().String()+PathSubscribe, strings.NewReader(`{"query":"FROM allEvents"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if l := readLine(t, br); l["type"] != "offsets" {
		t.Fatalf("first line = %v", l)
	}
	stop()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(DefaultShutdownTimeout / 2):
		t.Fatal("Serve did not return promptly with a subscription open")
	}
	waitFor(t, h.be.Ended, "the subscription's backend context to be cancelled")
	if l := readLine(t, br); l["type"] != "diagnostic" || !strings.Contains(l["message"].(string), "shutting down") {
		t.Fatalf("last line = %v", l)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after shutdown: %q %v", rest, err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepting after Serve returned")
	}
}

func TestServeShutdownIsBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ShutdownTimeout = 100 * time.Millisecond })
	tok := h.token("com.example.app")
	queryStarted := make(chan struct{})
	queryEnded := make(chan struct{})
	// A query that never ends by itself (until its context is cancelled).
	h.be.QuerySeq = func(ctx context.Context, _ event.QueryRequest) iter.Seq2[event.Item, error] {
		return func(yield func(event.Item, error) bool) {
			defer close(queryEnded)
			close(queryStarted)
			<-ctx.Done()
			yield(event.Item{}, ctx.Err())
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- h.srv.Serve(ctx, ln) }()
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+PathQuery, strings.NewReader(`{"query":"FROM allEvents"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	waitFor(t, queryStarted, "the query to start")
	stop()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve hung on a query that does not end")
	}
	waitFor(t, queryEnded, "the stuck query to be cancelled")
}

func TestServeReturnsListenerError(t *testing.T) {
	h := newHarness(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := h.srv.Serve(t.Context(), ln); err == nil {
		t.Fatal("Serve on a closed listener returned nil")
	}
}

// discardWriter is a ResponseWriter that throws the body away.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

// BenchmarkQueryStream measures encoding and writing query answers; one op
// is one event line.
func BenchmarkQueryStream(b *testing.B) {
	be := fakebackendFor(b)
	srv, err := New(be, Config{Key: testKey(b), DevMode: true, Now: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	payload := cborOf(b, `{"temperature":21.5,"unit":"C","sensor":"machine-7","ok":true}`)
	be.QuerySeq = func(ctx context.Context, _ event.QueryRequest) iter.Seq2[event.Item, error] {
		return func(yield func(event.Item, error) bool) {
			e := event.Event{Stream: be.Stream(), Timestamp: 1622108806233884, Tags: []string{"machine:7", "temperature"}, AppID: "com.example.sensor", Payload: payload}
			for i := range b.N {
				e.Lamport, e.Offset = uint64(i+1), uint64(i)
				if !yield(event.Item{Kind: event.KindEvent, Event: &e}, nil) {
					return
				}
			}
			yield(event.Item{Kind: event.KindOffsets, Offsets: event.OffsetMap{}}, nil)
		}
	}
	tok, err := issueToken(srv.cfg.Key, claims{AppID: "com.example.a", NodeID: be.ID, ExpiresAt: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, PathQuery, strings.NewReader(`{"query":"FROM allEvents"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	b.ResetTimer()
	srv.Handler().ServeHTTP(&discardWriter{h: http.Header{}}, req)
}
