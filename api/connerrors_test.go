package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgelog/edgelog/event"
)

// serveHarness runs h's server with Serve on a loopback listener until
// the test ends and returns its address.
func serveHarness(t *testing.T, h *harness) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// rawExchange writes req on a new connection to addr and reads one
// response.
func rawExchange(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", truncate(req, 80), err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestServerErrorsAreJSON: what net/http refuses before any handler runs
// is answered as the API's JSON error, with a 4xx status, and the API's
// own answers on the same server are untouched.
func TestServerErrorsAreJSON(t *testing.T) {
	h := newHarness(t, nil)
	addr := serveHarness(t, h)
	cases := []struct {
		name, req string
		status    int
		code      string
		mention   string
	}{
		{"garbage request line", "BROKEN\r\n\r\n", 400, CodeBadRequest, "malformed HTTP request"},
		{"no Host", "GET " + PathNodeID + " HTTP/1.1\r\n\r\n", 400, CodeBadRequest, "Host"},
		{"two Hosts", "GET " + PathNodeID + " HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, CodeBadRequest, "malformed"},
		{"negative Content-Length", "POST " + PathPublish + " HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, CodeBadRequest, "malformed"},
		{"two Content-Lengths", "POST " + PathPublish + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, CodeBadRequest, "malformed"},
		{"header without colon", "GET " + PathNodeID + " HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", 400, CodeBadRequest, "malformed"},
		{"NUL in header", "GET " + PathNodeID + " HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, CodeBadRequest, "malformed"},
		{"HTTP/3.0", "GET " + PathNodeID + " HTTP/3.0\r\nHost: x\r\n\r\n", 400, CodeBadRequest, "HTTP version"},
		{"unknown transfer encoding", "POST " + PathPublish + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400, CodeBadRequest, "Transfer-Encoding"},
		{"Expect other than 100-continue", "POST " + PathPublish + " HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}", 417, CodeBadRequest, "Expect"},
		{"oversized headers", "GET " + PathNodeID + " HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2*maxHeaderBytes) + "\r\n\r\n", 431, CodePayloadTooLarge, "headers exceed"},
		// The API's own answers, through the same connection wrapper.
		{"unknown path", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, CodeNotFound, "/nope"},
		{"no token", "GET " + PathNodeID + " HTTP/1.1\r\nHost: x\r\n\r\n", 401, CodeTokenInvalid, "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawExchange(t, addr, tc.req)
			wantError(t, resp, body, tc.status, tc.code, tc.mention)
		})
	}
	// A good request still works.
	tok := h.token("com.example.app")
	resp, body := rawExchange(t, addr, "GET "+PathNodeID+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\n\r\n")
	if resp.StatusCode != 200 || !strings.Contains(string(body), testNode) {
		t.Fatalf("node id: %d %s", resp.StatusCode, body)
	}
}

// TestRewriteServerErrorLeavesOthersAlone: only net/http's own plain-text
// answers are rewritten, never a response that merely looks similar.
func TestRewriteServerErrorLeavesOthersAlone(t *testing.T) {
	for _, p := range []string{
		"HTTP/1.1 200 OK" + serverErrorHeaders + "fine",
		"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{}",
		"HTTP/1.1 4",
		"HTTP/1.0 400 Bad Request" + serverErrorHeaders + "400 Bad Request",
		`{"type":"event"}`,
		"",
	} {
		if out, ok := rewriteServerError([]byte(p), maxHeaderBytes); ok {
			t.Errorf("rewrote %q into %q", p, out)
		}
	}
}

// TestSlowBodyTimesOut: a client sending its body a byte at a time gets
// 408 ERR_REQUEST_TIMEOUT once BodyTimeout has passed, and the connection
// closes; a subscription, whose answer streams for longer than that, is
// not cut by the body's deadline.
func TestSlowBodyTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := newHarness(t, func(c *Config) { c.BodyTimeout = timeout })
	addr := serveHarness(t, h)
	tok := h.token("com.example.app")

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"data":[{"tags":["a"],"payload":1}]}`
	if _, err := io.WriteString(c, "POST "+PathPublish+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\nContent-Type: application/json\r\nContent-Length: 38\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// A byte every 50 ms would take 1.9 s for the body.
	start := time.Now()
	go func() {
		for i := range len(body) {
			if _, err := c.Write([]byte{body[i]}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	wantError(t, resp, got, http.StatusRequestTimeout, CodeRequestTimeout, "did not arrive")
	if took < timeout {
		t.Errorf("answered after %v, before the body timeout of %v", took, timeout)
	}
	if _, _, calls := h.be.LastPublish(); calls != 0 {
		t.Errorf("%d publishes reached the backend", calls)
	}
	// The server closes; as the writer goroutine may still be sending,
	// the close can arrive as a reset rather than a clean end.
	if _, err := br.ReadByte(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("connection still open after the 408: %v", err)
	}

	// A subscription lives past the body timeout: its body arrived in time.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+PathSubscribe, strings.NewReader(`{"query":"FROM allEvents"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	sub, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Body.Close()
	sr := bufio.NewReader(sub.Body)
	if l := readLine(t, sr); l["type"] != "offsets" {
		t.Fatalf("first line = %v", l)
	}
	time.Sleep(3 * timeout)
	h.be.Live <- event.Item{Kind: event.KindEvent, Event: &event.Event{Lamport: 1, Stream: h.be.Stream(), Tags: []string{"a"}, AppID: "com.example.src", Payload: cborOf(t, `1`)}}
	if l := readLine(t, sr); l["type"] != "event" {
		t.Fatalf("after %v the subscription gave %v, want the live event", 3*timeout, l)
	}
}
