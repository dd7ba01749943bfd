package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/node"
	"github.com/edgelog/edgelog/store"
)

// timeout bounds every wait of these tests.
const timeout = 30 * time.Second

func TestMain(m *testing.M) {
	// The tests set what they need; settings of the caller's environment
	// must not leak into them.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "EDGELOG_") {
			os.Unsetenv(k)
		}
	}
	os.Exit(m.Run())
}

// lineLog collects the lines written to a pipe and hands them out as they
// arrive.
type lineLog struct {
	mu    sync.Mutex
	lines []string
	ch    chan string // every line, buffered generously
	done  chan struct{}
}

// newLineLog returns a writer whose lines are collected, and the log.
func newLineLog() (*io.PipeWriter, *lineLog) {
	pr, pw := io.Pipe()
	l := &lineLog{ch: make(chan string, 10000), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			l.mu.Unlock()
			select {
			case l.ch <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return pw, l
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// next waits for the next line.
func (l *lineLog) next(t *testing.T, what string) string {
	t.Helper()
	select {
	case s := <-l.ch:
		return s
	case <-time.After(timeout):
		t.Fatalf("timed out waiting for %s; lines so far:\n%s", what, l)
		return ""
	}
}

// waitFor waits for a line matching re and returns its submatches.
func (l *lineLog) waitFor(t *testing.T, re *regexp.Regexp, exited <-chan int) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case s := <-l.ch:
			if m := re.FindStringSubmatch(s); m != nil {
				return m
			}
		case code := <-exited:
			t.Fatalf("edgelog exited with %d before printing %v:\n%s", code, re, l)
		case <-deadline:
			t.Fatalf("timed out waiting for %v:\n%s", re, l)
		}
	}
}

// cli runs an edgelog command to its end.
func cli(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// mustCLI runs an edgelog command that must succeed.
func mustCLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errs := cli(t, stdin, args...)
	if code != 0 {
		t.Fatalf("edgelog %q: exit code %d\nstdout: %s\nstderr: %s", args, code, out, errs)
	}
	return out
}

// ndjson decodes NDJSON lines into maps.
func ndjson(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if line == "" {
			t.Fatalf("empty line in NDJSON output %q", s)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func jsonNum(t *testing.T, v any) int {
	t.Helper()
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("%v is not a number", v)
	}
	return int(f)
}

var runListenRE = regexp.MustCompile(`^edgelog: API listening on (http://127\.0\.0\.1:(\d+))$`)

// startNode runs `edgelog run` on dir with a random port and returns the
// API URL, the node's stderr and a func that stops it and returns its exit
// code.
func startNode(t *testing.T, dir string, extra ...string) (url string, logs *lineLog, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr, logs := newLineLog()
	exited := make(chan int, 1)
	args := append([]string{"run", "--data", dir, "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--mdns=false"}, extra...)
	go func() {
		code := run(ctx, args, strings.NewReader(""), io.Discard, stderr)
		stderr.Close()
		exited <- code
	}()
	m := logs.waitFor(t, runListenRE, exited)
	if m[2] == "0" {
		t.Fatalf("the listening line shows port 0: %q", m[0])
	}
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-exited:
			case <-time.After(timeout):
				t.Fatalf("edgelog run did not stop after cancel:\n%s", logs)
			}
			<-logs.done
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return m[1], logs, stop
}

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	url, logs, stop := startNode(t, dir)
	api := []string{"--api", url}

	// The URL file lets scripts find the node.
	if b, err := os.ReadFile(filepath.Join(dir, apiURLFile)); err != nil || strings.TrimSpace(string(b)) != url {
		t.Errorf("%s: got %q, %v; want %q", apiURLFile, b, err, url)
	}

	// node id
	id := strings.TrimSpace(mustCLI(t, "", append([]string{"node", "id"}, api...)...))
	if !regexp.MustCompile(`^12D3KooW[1-9A-HJ-NP-Za-km-z]+$`).MatchString(id) {
		t.Fatalf("node id %q", id)
	}
	if !strings.Contains(logs.String(), "edgelog: node ID "+id) {
		t.Errorf("run did not print its node ID %s:\n%s", id, logs)
	}
	stream := id + "-0"

	// publish one event from the argument
	metas := ndjson(t, mustCLI(t, "", append([]string{"events", "publish", "--tag", "a", "-t", "b", `{"x": 1}`}, api...)...))
	if len(metas) != 1 || metas[0]["stream"] != stream || jsonNum(t, metas[0]["offset"]) != 0 ||
		jsonNum(t, metas[0]["lamport"]) != 1 || jsonNum(t, metas[0]["timestamp"]) <= 0 || len(metas[0]) != 4 {
		t.Fatalf("publish answered %v", metas)
	}

	// publish from stdin: one event per line, empty lines skipped
	metas = ndjson(t, mustCLI(t, "{\"n\":1}\n\n  {\"n\":2}\n3\n", append([]string{"events", "publish", "--tag", "c"}, api...)...))
	if len(metas) != 3 {
		t.Fatalf("publish from stdin answered %v", metas)
	}
	for i, m := range metas {
		if jsonNum(t, m["offset"]) != i+1 || m["stream"] != stream {
			t.Errorf("event %d: %v", i, m)
		}
	}

	// a bad line stops publishing; the lines before it are published
	code, out, errs := cli(t, "{\"n\":4}\nnot json\n{\"n\":5}\n", append([]string{"events", "publish", "--tag", "c"}, api...)...)
	if code != 1 || !strings.Contains(errs, "stdin line 2") || !strings.Contains(errs, "1 events before it were published") {
		t.Errorf("bad stdin line: exit %d, stderr %q", code, errs)
	}
	if metas := ndjson(t, out); len(metas) != 1 || jsonNum(t, metas[0]["offset"]) != 4 {
		t.Errorf("bad stdin line: published %v", metas)
	}

	// a bad argument is a usage error and publishes nothing
	if code, _, errs := cli(t, "", append([]string{"events", "publish", "{oops"}, api...)...); code != 2 || !strings.Contains(errs, "PAYLOAD_JSON") {
		t.Errorf("bad payload argument: exit %d, stderr %q", code, errs)
	}

	// query
	lines := ndjson(t, mustCLI(t, "", append([]string{"events", "query", "FROM 'c'"}, api...)...))
	if len(lines) != 5 {
		t.Fatalf("query: got %d lines, want 4 events and offsets: %v", len(lines), lines)
	}
	wantPayloads := []string{`{"n":1}`, `{"n":2}`, `3`, `{"n":4}`}
	for i, l := range lines[:4] {
		p, _ := json.Marshal(l["payload"])
		if l["type"] != "event" || jsonNum(t, l["offset"]) != i+1 || string(p) != wantPayloads[i] ||
			l["appId"] != defaultAppID || l["stream"] != stream {
			t.Errorf("query line %d: %v", i, l)
		}
	}
	if l := lines[4]; l["type"] != "offsets" || jsonNum(t, l["offsets"].(map[string]any)[stream]) != 4 {
		t.Errorf("query final line: %v", l)
	}

	// query with bounds and order
	lower := `{"` + stream + `": 2}`
	upper := `{"` + stream + `": 3}`
	lines = ndjson(t, mustCLI(t, "", append([]string{"events", "query", "--lower", lower, "--upper", upper, "--order", "desc", "FROM 'c'"}, api...)...))
	if len(lines) != 2 || jsonNum(t, lines[0]["offset"]) != 3 || lines[1]["type"] != "offsets" {
		t.Errorf("bounded query: %v", lines)
	}
	lines = ndjson(t, mustCLI(t, "", append([]string{"events", "query", "--order", "desc"}, api...)...))
	if len(lines) != 6 || jsonNum(t, lines[0]["offset"]) != 4 || jsonNum(t, lines[4]["offset"]) != 0 {
		t.Errorf("query of all events, descending: %v", lines)
	}

	// API errors: code and message on stderr, exit code 1
	if code, out, errs := cli(t, "", append([]string{"events", "query", "FROM ((("}, api...)...); code != 1 || out != "" ||
		!strings.HasPrefix(errs, "edgelog: ERR_BAD_QUERY: ") {
		t.Errorf("bad query: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, errs := cli(t, "", append([]string{"node", "id", "--app-id", "com.acme.intruder"}, api...)...); code != 1 ||
		!strings.HasPrefix(errs, "edgelog: ERR_APP_UNAUTHORIZED: ") {
		t.Errorf("unauthorized app: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := cli(t, "", append([]string{"events", "query", "--order", "sideways"}, api...)...); code != 2 || !strings.Contains(errs, "--order") {
		t.Errorf("bad order: exit %d, stderr %q", code, errs)
	}

	// offsets
	offs := ndjson(t, mustCLI(t, "", append([]string{"events", "offsets"}, api...)...))
	if len(offs) != 1 || jsonNum(t, offs[0]["present"].(map[string]any)[stream]) != 4 || len(offs[0]["toReplicate"].(map[string]any)) != 0 {
		t.Errorf("offsets: %v", offs)
	}

	// node info
	info := ndjson(t, mustCLI(t, "", append([]string{"node", "info"}, api...)...))
	if len(info) != 1 || info[0]["version"] != version || jsonNum(t, info[0]["connectedNodes"]) != 0 {
		t.Errorf("node info: %v", info)
	}
	if up, ok := info[0]["uptime"].(map[string]any); !ok || up["secs"] == nil || up["nanos"] == nil {
		t.Errorf("node info uptime: %v", info)
	}

	// subscribe: the backlog, the offsets marker, then live events
	subCtx, cancelSub := context.WithCancel(context.Background())
	defer cancelSub()
	subOut, sub := newLineLog()
	var subErr bytes.Buffer
	subExit := make(chan int, 1)
	go func() {
		code := run(subCtx, append([]string{"events", "subscribe", "--lower", `{"` + stream + `": 1}`, "FROM 'c'"}, api...),
			strings.NewReader(""), subOut, &subErr)
		subOut.Close()
		subExit <- code
	}()
	for _, want := range []int{2, 3, 4} {
		var l map[string]any
		if err := json.Unmarshal([]byte(sub.next(t, "a backlog event")), &l); err != nil || l["type"] != "event" || jsonNum(t, l["offset"]) != want {
			t.Fatalf("subscribe backlog: got %v (%v), want offset %d", l, err, want)
		}
	}
	var marker map[string]any
	if err := json.Unmarshal([]byte(sub.next(t, "the offsets marker")), &marker); err != nil || marker["type"] != "offsets" {
		t.Fatalf("subscribe marker: %v (%v)", marker, err)
	}
	mustCLI(t, "", append([]string{"events", "publish", "--tag", "other", `"not for the subscriber"`}, api...)...)
	mustCLI(t, "", append([]string{"events", "publish", "--tag", "c", `{"live": true}`}, api...)...)
	var live map[string]any
	if err := json.Unmarshal([]byte(sub.next(t, "the live event")), &live); err != nil || live["type"] != "event" ||
		jsonNum(t, live["offset"]) != 6 || live["payload"].(map[string]any)["live"] != true {
		t.Fatalf("subscribe live event: %v (%v)", live, err)
	}
	cancelSub()
	select {
	case code := <-subExit:
		if code != 0 {
			t.Errorf("subscribe ended with exit code %d after Ctrl-C; stderr %q", code, subErr.String())
		}
	case <-time.After(timeout):
		t.Fatal("subscribe did not end after its context was cancelled")
	}
	<-sub.done
	if rest := sub.String(); strings.Count(rest, "\n") != 4 {
		t.Errorf("subscribe printed more than expected:\n%s", rest)
	}

	// shutdown: exit code 0, the node closed, the URL file gone
	if code := stop(); code != 0 {
		t.Fatalf("run exited with %d:\n%s", code, logs)
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("run did not log its shutdown:\n%s", logs)
	}
	if _, err := os.Stat(filepath.Join(dir, apiURLFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still exists after shutdown: %v", apiURLFile, err)
	}
	n, err := node.Open(context.Background(), node.Config{Store: store.Config{DataDir: dir}})
	if err != nil {
		t.Fatalf("reopening the data directory: %v", err)
	}
	defer n.Close()
	if n.NodeID() != id {
		t.Errorf("reopened node has ID %s, want %s", n.NodeID(), id)
	}
	o, err := n.Offsets(context.Background())
	if err != nil || o.Present[event.StreamID(stream)] != 6 {
		t.Errorf("reopened node holds %v (%v), want offset 6", o.Present, err)
	}
}

func TestRunSettings(t *testing.T) {
	// dev mode off: com.example apps are refused, listed ones accepted
	cfg := writeFile(t, "c.yaml", "auth:\n  devMode: false\n  allowedApps: [com.acme.*]\n")
	url, _, stop := startNode(t, t.TempDir(), "--config", cfg, "--durability", "async")
	if code, _, errs := cli(t, "", "node", "id", "--api", url); code != 1 || !strings.Contains(errs, "ERR_APP_UNAUTHORIZED") {
		t.Errorf("dev mode off: exit %d, stderr %q", code, errs)
	}
	if code, _, errs := cli(t, "", "node", "id", "--api", url, "--app-id", "com.acme.tool"); code != 0 {
		t.Errorf("allowed app: exit %d, stderr %q", code, errs)
	}

	// Many lines from stdin go out in several batches, in order.
	var in strings.Builder
	const n = 2*publishBatchEvents + 17
	for i := range n {
		fmt.Fprintf(&in, "{\"i\":%d}\n", i)
	}
	metas := ndjson(t, mustCLI(t, in.String(), "events", "publish", "--api", url, "--app-id", "com.acme.tool", "-t", "bulk"))
	if len(metas) != n {
		t.Fatalf("published %d events, want %d", len(metas), n)
	}
	for i, m := range metas {
		if jsonNum(t, m["offset"]) != i {
			t.Fatalf("event %d has offset %v", i, m["offset"])
		}
	}
	lines := ndjson(t, mustCLI(t, "", "events", "query", "--api", url, "--app-id", "com.acme.tool", "FROM 'bulk'"))
	if len(lines) != n+1 || jsonNum(t, lines[n-1]["payload"].(map[string]any)["i"]) != n-1 {
		t.Errorf("query of the bulk events: %d lines", len(lines))
	}
	if code := stop(); code != 0 {
		t.Errorf("run exited with %d", code)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	// A bad flag is a usage error, a bad file an error; neither starts a node.
	if code, _, errs := cli(t, "", "run", "--data", dir, "--durability", "fast"); code != 2 || !strings.Contains(errs, "--durability") {
		t.Errorf("bad flag: exit %d, stderr %q", code, errs)
	}
	cfg := writeFile(t, "c.yaml", "data: x\nnetwork: {}\n")
	if code, _, errs := cli(t, "", "run", "--data", dir, "--config", cfg); code != 1 || !strings.Contains(errs, "c.yaml:2:1: network: unknown key") {
		t.Errorf("bad config file: exit %d, stderr %q", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "node.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a node was started despite the errors: %v", err)
	}

	// A second node on the same data directory fails cleanly.
	url, _, stop := startNode(t, dir)
	if code, _, errs := cli(t, "", "run", "--data", dir, "--api", "127.0.0.1:0", "--replicate=false"); code != 1 || errs == "" {
		t.Errorf("second node on the same data: exit %d, stderr %q", code, errs)
	}
	// The address in use fails cleanly too.
	addr := strings.TrimPrefix(url, "http://")
	if code, _, errs := cli(t, "", "run", "--data", t.TempDir(), "--api", addr, "--replicate=false"); code != 1 || !strings.Contains(errs, "address already in use") {
		t.Errorf("address in use: exit %d, stderr %q", code, errs)
	}
	if code := stop(); code != 0 {
		t.Errorf("run exited with %d", code)
	}

	// Client commands report an unreachable node.
	if code, _, errs := cli(t, "", "events", "offsets", "--api", url); code != 1 || !strings.Contains(errs, "cannot reach the node") {
		t.Errorf("stopped node: exit %d, stderr %q", code, errs)
	}
}

// TestPublishIdempotencyKey: a retried publish with the same key prints the
// first answer and stores nothing; the key with another payload is refused;
// the flag needs a payload argument.
func TestPublishIdempotencyKey(t *testing.T) {
	url, _, _ := startNode(t, t.TempDir())
	api := []string{"--api", url, "--json"}
	pub := append([]string{"events", "publish", "--idempotency-key", "order-17", "-t", "order:17", `{"done":true}`}, api...)
	first := ndjson(t, mustCLI(t, "", pub...))
	again := ndjson(t, mustCLI(t, "", pub...))
	if len(first) != 1 || !reflect.DeepEqual(first, again) {
		t.Fatalf("retry answered %v, first %v", again, first)
	}
	lines := ndjson(t, mustCLI(t, "", append([]string{"events", "query", "FROM 'order:17'"}, api...)...))
	if len(lines) != 2 { // the event and the offsets line
		t.Errorf("the node holds %d lines for order:17 after a retry, want 1 event: %v", len(lines), lines)
	}

	code, _, errs := cli(t, "", append([]string{"events", "publish", "--idempotency-key", "order-17", "-t", "order:17", `{"done":false}`}, api...)...)
	if code != 1 || !strings.Contains(errs, "ERR_IDEMPOTENCY_MISMATCH") {
		t.Errorf("reused key with another payload: exit %d, stderr %q", code, errs)
	}
	code, _, errs = cli(t, `{"n":1}`+"\n", append([]string{"events", "publish", "--idempotency-key", "k"}, api...)...)
	if code != 2 || !strings.Contains(errs, "--idempotency-key") {
		t.Errorf("key with stdin events: exit %d, stderr %q", code, errs)
	}
}
