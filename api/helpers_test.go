package api

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgelog/edgelog/api/internal/fakebackend"
)

const testNode = "12D3KooWTestNode"

// testClock is an adjustable clock for token expiry.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	t     *testing.T
	srv   *Server
	be    *fakebackend.Backend
	ts    *httptest.Server
	clock *testClock
	key   ed25519.PrivateKey
	logs  *syncBuffer
}

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// newHarness starts a Server (dev mode on) over a fake backend; edit may
// change the config first.
func newHarness(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, be: fakebackend.New(testNode), clock: newTestClock(), key: testKey(t), logs: &syncBuffer{}}
	cfg := Config{
		Key:     h.key,
		DevMode: true,
		Logger:  slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:     h.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(h.be, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(h.ts.Close)
	return h
}

// token fetches a token for appID, failing the test on error.
func (h *harness) token(appID string) string {
	h.t.Helper()
	resp, body := h.do(http.MethodPost, PathAuth, "", `{"appId":"`+appID+`","displayName":"Test","version":"1.0"}`)
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("auth %s: %d %s", appID, resp.StatusCode, body)
	}
	var r AuthResponse
	if err := json.Unmarshal(body, &r); err != nil || r.Token == "" {
		h.t.Fatalf("auth answer %s: %v", body, err)
	}
	return r.Token
}

// do sends a request and reads the whole answer.
func (h *harness) do(method, path, token, body string) (*http.Response, []byte) {
	h.t.Helper()
	resp := h.open(method, path, token, body)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, b
}

// open sends a request and returns the response with its body unread.
func (h *harness) open(method, path, token, body string) *http.Response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.ts.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// wantError checks an error answer's status, code, and that its message
// contains each of substrs.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string, substrs ...string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	if len(m) != 2 {
		t.Errorf("error body %s: want exactly code and message", body)
	}
	if m["code"] != code {
		t.Errorf("code = %v, want %s (body %s)", m["code"], code, body)
	}
	msg, _ := m["message"].(string)
	if msg == "" {
		t.Errorf("empty message in %s", body)
	}
	for _, s := range substrs {
		if !strings.Contains(msg, s) {
			t.Errorf("message %q does not mention %q", msg, s)
		}
	}
}

// jsonLines splits an NDJSON body into decoded objects.
func jsonLines(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// keysOf returns the sorted keys of m, joined with commas.
func keysOf(m map[string]any) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ",")
}

// waitFor waits for a value on ch, failing after a generous deadline.
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func fakebackendFor(testing.TB) *fakebackend.Backend { return fakebackend.New(testNode) }
