package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/api"
)

// The hostile-input suite: a seeded generator of malformed, oversized,
// deeply nested and extreme requests against a live `edgelog run` node,
// over raw connections as well as through net/http. Every answer must be
// a 2xx or a JSON error with a 4xx status, never a 5xx; the node keeps
// serving, and its heap and open files stay bounded.
//
// -hostile.requests sets how many generated requests are sent (the short
// form in `make test` sends 1500, `make test-hostile` 30000); -hostile.seed
// replays a run (the seed is printed). They are flags, not variables:
// TestMain clears EDGELOG_* from the environment.
var (
	hostileRequests = flag.Int("hostile.requests", 1500, "TestHostileInput: generated requests to send")
	hostileSeed     = flag.Uint64("hostile.seed", 0, "TestHostileInput: the seed to replay (0: a new one)")
)

// hostileEndpoints are the POST endpoints with JSON bodies, and a valid
// body of each that the generator mutates.
var hostileEndpoints = []struct{ path, valid string }{
	{api.PathPublish, `{"data":[{"tags":["h"],"payload":{"a":[1,2,{"b":"c"}]}}]}`},
	{api.PathQuery, `{"query":"FROM 'h' & isLocal","order":"desc","upperBound":{}}`},
	{api.PathSubscribe, `{"query":"FROM 'h'","lowerBound":{}}`},
	{api.PathSubscribeMonotonic, `{"session":"s","query":"FROM 'h'","lowerBound":{}}`},
	{api.PathConsumerPut, `{"name":"c","checkpoint":{},"blocked":[],"running":true}`},
	{api.PathConsumerGet, `{"name":"c"}`},
	{api.PathAuth, `{"appId":"com.example.hostile","displayName":"h","version":"1"}`},
}

// hostileBody returns a mutation of valid: what a careless or malicious
// client sends.
func hostileBody(rng *rand.Rand, valid, stream string) string {
	numbers := []string{"-1", "1e400", "18446744073709551615", "18446744073709551616", "9223372036854775808", "1.5", "0x10", "NaN", "-0", "1" + strings.Repeat("0", 400)}
	bound := func() string {
		return fmt.Sprintf(`{"%s":%s}`, stream, numbers[rng.IntN(len(numbers))])
	}
	switch rng.IntN(16) {
	case 0: // truncated
		return valid[:rng.IntN(len(valid))]
	case 1: // random bytes
		b := make([]byte, rng.IntN(512))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return string(b)
	case 2: // one byte flipped
		b := []byte(valid)
		b[rng.IntN(len(b))] ^= byte(1 << rng.UintN(8))
		return string(b)
	case 3: // deeply nested payload
		d := 1 + rng.IntN(5000)
		return `{"data":[{"tags":["h"],"payload":` + strings.Repeat("[", d) + strings.Repeat("]", d) + `}]}`
	case 4: // deeply nested anything
		d := 1 + rng.IntN(100000)
		return strings.Repeat(`{"a":`, d) + "1" + strings.Repeat("}", d)
	case 5: // extreme bounds
		return fmt.Sprintf(`{"query":"FROM allEvents","order":"%s","lowerBound":%s,"upperBound":%s}`, []string{"asc", "desc", "stream-asc", "sideways"}[rng.IntN(4)], bound(), bound())
	case 6: // invalid UTF-8 in strings
		return strings.Replace(valid, `"h"`, "\"h\xff\xfe\xc0\x80\"", 1)
	case 7: // wrong types
		return strings.NewReplacer(`"h"`, `17`, `{}`, `[]`, `true`, `"yes"`).Replace(valid)
	case 8: // many events, many tags
		tags := strings.Repeat(`"t",`, rng.IntN(300)) + `"t"`
		ev := `{"tags":[` + tags + `],"payload":1}`
		return `{"data":[` + strings.Repeat(ev+",", rng.IntN(3000)) + ev + `]}`
	case 9: // long strings
		return strings.Replace(valid, `"h"`, `"`+strings.Repeat("h", rng.IntN(1<<20))+`"`, 1)
	case 10: // hostile queries
		qs := []string{"FROM", "FROM 'a' &", "FROM " + strings.Repeat("(", 5000) + "'a'" + strings.Repeat(")", 5000), "FROM 'a' | 'b' & !!!", "FROM appId(", "FROM from(2020-13-45)", "FROM 'a' SELECT _.x", "\x00", strings.Repeat("FROM 'a' | ", 20000) + "'a'"}
		return fmt.Sprintf(`{"query":%q}`, qs[rng.IntN(len(qs))])
	case 11: // duplicate keys and trailing data
		return valid + valid
	case 12: // empty, null, scalars
		return []string{"", "null", "[]", "1", `"x"`, "{}", " "}[rng.IntN(7)]
	case 13: // stream ids that are not
		return fmt.Sprintf(`{"query":"FROM allEvents","lowerBound":{"%s":1}}`, []string{"", "-", "x-", "x--1", stream + "x", strings.Repeat("a", 10000) + "-0", "a\u0000-1"}[rng.IntN(7)])
	case 14: // huge numbers in payloads
		return `{"data":[{"tags":["h"],"payload":` + numbers[rng.IntN(len(numbers))] + `}]}`
	default:
		return valid
	}
}

// hostileStats counts answers by status.
type hostileStats struct {
	mu       sync.Mutex
	sent     int
	byStatus map[int]int
	bad      []string // answers that break the contract
}

func (s *hostileStats) record(status int, contentType string, body []byte, what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent++
	s.byStatus[status]++
	if status >= 500 {
		s.bad = append(s.bad, fmt.Sprintf("%d for %s: %.200s", status, what, body))
		return
	}
	if status >= 400 {
		var e api.Error
		if contentType != "application/json" || json.Unmarshal(body, &e) != nil || !strings.HasPrefix(e.Code, "ERR_") || e.Message == "" {
			s.bad = append(s.bad, fmt.Sprintf("%d not a JSON error (%s) for %s: %.200s", status, contentType, what, body))
		}
	}
}

// openFiles counts this process's open file descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	return len(fds)
}

func TestHostileInput(t *testing.T) {
	requests, seed := *hostileRequests, *hostileSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: go test ./cmd/edgelog -run TestHostileInput -args -hostile.seed=%d -hostile.requests=%d)", seed, seed, requests)
	rng := rand.New(rand.NewPCG(seed, 1))

	url, _, _ := startNode(t, t.TempDir())
	addr := strings.TrimPrefix(url, "http://")
	client := &http.Client{Timeout: 30 * time.Second}
	tok := hostileToken(t, client, url)
	var meta []map[string]any
	mustDo(t, client, url+api.PathPublish, tok, `{"data":[{"tags":["h"],"payload":1}]}`, &meta)
	stream := ""
	if d, ok := meta[0]["data"].([]any); ok && len(d) > 0 {
		stream, _ = d[0].(map[string]any)["stream"].(string)
	}
	if stream == "" {
		t.Fatalf("publish answered %v", meta)
	}
	runtime.GC()
	fdsBefore := openFiles(t)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapInuse

	st := &hostileStats{byStatus: map[int]int{}}
	start := time.Now()
	// Generated bodies through net/http, two at a time.
	jobs := make(chan [2]string)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for j := range jobs {
				req, _ := http.NewRequest(http.MethodPost, url+j[0], strings.NewReader(j[1]))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					st.mu.Lock()
					st.bad = append(st.bad, fmt.Sprintf("%s: %v", j[0], err))
					st.mu.Unlock()
					continue
				}
				// Streams (subscriptions) are cut after their first line.
				var body []byte
				if strings.HasPrefix(resp.Header.Get("Content-Type"), api.ContentTypeNDJSON) {
					body, _ = bufio.NewReader(resp.Body).ReadBytes('\n')
				} else {
					body, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
				}
				resp.Body.Close()
				st.record(resp.StatusCode, resp.Header.Get("Content-Type"), body, fmt.Sprintf("POST %s %.120q", j[0], j[1]))
			}
		})
	}
	for range requests {
		ep := hostileEndpoints[rng.IntN(len(hostileEndpoints))]
		jobs <- [2]string{ep.path, hostileBody(rng, ep.valid, stream)}
	}
	close(jobs)
	wg.Wait()

	// Raw connections: header abuse, lies about the body, half-closes.
	raws := []string{
		"BROKEN\r\n\r\n",
		"GET " + api.PathNodeID + " HTTP/1.1\r\n\r\n",
		"GET " + api.PathNodeID + " HTTP/3.0\r\nHost: x\r\n\r\n",
		"GET " + api.PathNodeID + " HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 100<<10) + "\r\n\r\n",
		"POST " + api.PathPublish + " HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
		"POST " + api.PathPublish + " HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"POST " + api.PathPublish + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"POST " + api.PathPublish + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"POST " + api.PathPublish + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nContent-Length: 100000000\r\n\r\n{}",
		"POST " + api.PathQuery + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + "\r\nContent-Length: 5\r\n\r\n{",
		"GET " + api.PathNodeID + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + strings.Repeat("x", 5000) + "\r\n\r\n",
		"GET " + api.PathNodeID + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe.\x00\r\n\r\n",
		"GET /" + strings.Repeat("%zz", 1000) + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"DELETE " + api.PathPublish + " HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	for _, raw := range raws {
		rawHostile(t, st, addr, raw)
	}
	took := time.Since(start)

	// The node still serves, and held on to nothing.
	mustDo(t, client, url+api.PathPublish, tok, `{"data":[{"tags":["h"],"payload":2}]}`, nil)
	client.CloseIdleConnections()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fdsAfter := 0
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if fdsAfter = openFiles(t); fdsAfter <= fdsBefore+8 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d requests in %v, answers by status %v, %d 5xx; open files %d -> %d, heap in use %d -> %d MiB",
		st.sent, took.Round(time.Millisecond), st.byStatus, countFrom(st.byStatus, 500), fdsBefore, fdsAfter, heapBefore>>20, ms.HeapInuse>>20)
	for _, b := range st.bad[:min(len(st.bad), 20)] {
		t.Error(b)
	}
	if fdsAfter > fdsBefore+8 {
		t.Errorf("open files grew from %d to %d", fdsBefore, fdsAfter)
	}
	if ms.HeapInuse > heapBefore+256<<20 {
		t.Errorf("heap in use grew from %d to %d MiB", heapBefore>>20, ms.HeapInuse>>20)
	}
}

// rawHostile sends raw on its own connection, half-closes it, and records
// the answer (a connection closed without one counts as status 0).
func rawHostile(t *testing.T, st *hostileStats, addr, raw string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(40 * time.Second))
	_, _ = io.WriteString(c, raw)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		st.record(0, "", nil, fmt.Sprintf("raw %.80q", raw))
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	st.record(resp.StatusCode, resp.Header.Get("Content-Type"), body, fmt.Sprintf("raw %.80q", raw))
}

func countFrom(by map[int]int, from int) int {
	n := 0
	for s, c := range by {
		if s >= from {
			n += c
		}
	}
	return n
}

// hostileToken fetches a bearer token for the suite's app.
func hostileToken(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	var r api.AuthResponse
	mustDo(t, c, url+api.PathAuth, "", `{"appId":"com.example.hostile","displayName":"Hostile","version":"1"}`, &r)
	return r.Token
}

// mustDo posts body and decodes the JSON answer (one value, or NDJSON
// lines into a slice) into out, failing unless it is a 200.
func mustDo(t *testing.T, c *http.Client, url, tok, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
	if out == nil {
		return
	}
	if lines, ok := out.(*[]map[string]any); ok {
		for l := range bytes.SplitSeq(bytes.TrimSpace(b), []byte("\n")) {
			var m map[string]any
			if err := json.Unmarshal(l, &m); err != nil {
				t.Fatalf("POST %s: line %q: %v", url, l, err)
			}
			*lines = append(*lines, m)
		}
		return
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("POST %s: %q: %v", url, b, err)
	}
}
