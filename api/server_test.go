package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/edgelog/edgelog/event"
)

func TestRouting(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	t.Run("unknown path", func(t *testing.T) {
		for _, p := range []string{"/", "/api/v2", "/api/v2/", "/api/v2/nope", PathNodeID + "/", "/api/v1/node/id"} {
			resp, body := h.do(http.MethodGet, p, tok, "")
			wantError(t, resp, body, http.StatusNotFound, CodeNotFound)
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		cases := []struct{ method, path, allow string }{
			{http.MethodGet, PathAuth, "POST"},
			{http.MethodPost, PathNodeID, "GET"},
			{http.MethodDelete, PathNodeInfo, "GET"},
			{http.MethodPut, PathOffsets, "GET"},
			{http.MethodGet, PathPublish, "POST"},
			{http.MethodGet, PathQuery, "POST"},
			{http.MethodGet, PathSubscribe, "POST"},
			{http.MethodGet, PathSubscribeMonotonic, "POST"},
		}
		for _, tc := range cases {
			resp, body := h.do(tc.method, tc.path, tok, "")
			wantError(t, resp, body, http.StatusMethodNotAllowed, CodeMethodNotAllowed, tc.method)
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("%s %s: Allow = %q, want %q", tc.method, tc.path, got, tc.allow)
			}
		}
	})
}

func TestNodeID(t *testing.T) {
	h := newHarness(t, nil)
	resp, body := h.do(http.MethodGet, PathNodeID, h.token("com.example.app"), "")
	if resp.StatusCode != 200 || string(body) != testNode {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestNodeInfo(t *testing.T) {
	h := newHarness(t, nil)
	resp, body := h.do(http.MethodGet, PathNodeInfo, h.token("com.example.app"), "")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// The fake's uptime is 90s + 5ns.
	want := `{"connectedNodes":2,"peers":[{"nodeId":"12D3KooWPeer","addrs":["/ip4/10.0.0.2/tcp/4455"],"connected":true,"announced":true,"lag":3,"behind":1,"score":0}],"uptime":{"secs":90,"nanos":5},"version":"test-1.0"}`
	if string(body) != want {
		t.Fatalf("body = %s\nwant   %s", body, want)
	}
}

func TestOffsets(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	resp, body := h.do(http.MethodGet, PathOffsets, tok, "")
	if resp.StatusCode != 200 || string(body) != `{"present":{},"toReplicate":{}}` {
		t.Fatalf("empty node: %d %s", resp.StatusCode, body)
	}
	h.be.Add(event.Event{Lamport: 1, Stream: h.be.Stream(), Offset: 0, Tags: []string{"a"}, Payload: cborOf(t, `1`)},
		event.Event{Lamport: 2, Stream: h.be.Stream(), Offset: 1, Tags: []string{"a"}, Payload: cborOf(t, `2`)})
	h.be.ToReplicate = map[event.StreamID]uint64{"12D3KooWOther-0": 7}
	resp, body = h.do(http.MethodGet, PathOffsets, tok, "")
	want := `{"present":{"12D3KooWTestNode-0":1},"toReplicate":{"12D3KooWOther-0":7}}`
	if resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("got %d %s\nwant %s", resp.StatusCode, body, want)
	}
}

func TestPublish(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.writer")
	body := `{"data":[
		{"tags":["machine:7","temperature"],"payload":{"value":42.5,"n":3},"extra":true},
		{"tags":["x"],"payload":null}
	],"unknownTopLevel":{"a":1}}`
	resp, out := h.do(http.MethodPost, PathPublish, tok, body)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var got map[string][]map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got["data"]) != 2 {
		t.Fatalf("answer %s: want {\"data\":[two entries]}", out)
	}
	for i, m := range got["data"] {
		if keysOf(m) != "lamport,offset,stream,timestamp" {
			t.Errorf("data[%d] keys = %s", i, keysOf(m))
		}
		if m["stream"] != string(h.be.Stream()) || m["offset"] != float64(i) || m["lamport"] != float64(i+1) {
			t.Errorf("data[%d] = %v", i, m)
		}
	}
	app, drafts, _ := h.be.LastPublish()
	if app != "com.example.writer" {
		t.Errorf("backend got app id %q, want the token's", app)
	}
	if len(drafts) != 2 || strings.Join(drafts[0].Tags, ",") != "machine:7,temperature" {
		t.Fatalf("drafts = %+v", drafts)
	}
	if !bytes.Equal(drafts[0].Payload, cborOf(t, `{"n":3,"value":42.5}`)) || !bytes.Equal(drafts[1].Payload, cborOf(t, `null`)) {
		t.Errorf("payloads not converted to CBOR: %x, %x", drafts[0].Payload, drafts[1].Payload)
	}

	t.Run("empty data publishes nothing", func(t *testing.T) {
		_, _, before := h.be.LastPublish()
		resp, out := h.do(http.MethodPost, PathPublish, tok, `{"data":[]}`)
		if resp.StatusCode != 200 || string(out) != `{"data":[]}` {
			t.Fatalf("%d %s", resp.StatusCode, out)
		}
		if _, _, after := h.be.LastPublish(); after != before {
			t.Error("backend called for an empty publish")
		}
	})
	t.Run("empty tag list accepted", func(t *testing.T) {
		resp, out := h.do(http.MethodPost, PathPublish, tok, `{"data":[{"tags":[],"payload":1}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, out)
		}
	})
}

func TestPublishBadInput(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token("com.example.app")
	cases := []struct{ name, body, mention string }{
		{"empty body", ``, "empty"},
		{"malformed", `{"data":[{"tags":["a"],"payload":1}]`, "malformed"},
		{"syntax error", `{"data":[{"tags":["a"] "payload":1}]}`, "malformed"},
		{"trailing data", `{"data":[]} {}`, "trailing"},
		{"not an object", `[1,2]`, "object"},
		{"missing data", `{}`, "data"},
		{"data not array", `{"data":{"tags":["a"]}}`, "data"},
		{"data null", `{"data":null}`, "data"},
		{"event not object", `{"data":[5]}`, "data"},
		{"tags not array", `{"data":[{"tags":"a","payload":1}]}`, "data.tags"},
		{"tag a number", `{"data":[{"tags":["a",1],"payload":1}]}`, "data.tags"},
		{"tag an object", `{"data":[{"tags":[{}],"payload":1}]}`, "data.tags"},
		{"empty tag", `{"data":[{"tags":["a",""],"payload":1}]}`, "data[0].tags[1]"},
		{"null tag", `{"data":[{"tags":[null],"payload":1}]}`, "data[0].tags[0]"},
		{"missing tags", `{"data":[{"payload":1}]}`, "data[0]: missing field tags"},
		{"missing payload", `{"data":[{"tags":["a"]},{"tags":["b"]}]}`, "data[0]: missing field payload"},
		{"second missing payload", `{"data":[{"tags":["a"],"payload":1},{"tags":["b"]}]}`, "data[1]"},
		{"payload number out of range", `{"data":[{"tags":["a"],"payload":1e999}]}`, "payload"},
		{"payload too deep", `{"data":[{"tags":["a"],"payload":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]}`, "payload"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.do(http.MethodPost, PathPublish, tok, tc.body)
			wantError(t, resp, body, http.StatusBadRequest, CodeBadRequest, tc.mention)
		})
	}
	if _, _, calls := h.be.LastPublish(); calls != 0 {
		t.Fatalf("backend saw %d publishes of bad input", calls)
	}
}

func TestOversizedBody(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxRequestBytes = 1024 })
	tok := h.token("com.example.app")
	big := `{"data":[{"tags":["a"],"payload":"` + strings.Repeat("x", 2048) + `"}]}`
	resp, body := h.do(http.MethodPost, PathPublish, tok, big)
	wantError(t, resp, body, http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "1024")
	bigQuery := `{"query":"FROM '` + strings.Repeat("x", 2048) + `'"}`
	for _, p := range []string{PathQuery, PathSubscribe, PathSubscribeMonotonic} {
		resp, body := h.do(http.MethodPost, p, tok, bigQuery)
		wantError(t, resp, body, http.StatusRequestEntityTooLarge, CodePayloadTooLarge)
	}
	resp, body = h.do(http.MethodPost, PathAuth, "", `{"appId":"com.example.app","displayName":"`+strings.Repeat("x", 2048)+`"}`)
	wantError(t, resp, body, http.StatusRequestEntityTooLarge, CodePayloadTooLarge)
	// Just under the limit passes.
	ok := `{"data":[{"tags":["a"],"payload":"` + strings.Repeat("x", 900) + `"}]}`
	if resp, body := h.do(http.MethodPost, PathPublish, tok, ok); resp.StatusCode != 200 {
		t.Fatalf("body under the limit: %d %s", resp.StatusCode, body)
	}
}

func TestBackendErrorMapping(t *testing.T) {
	cases := []struct {
		err      error
		status   int
		code     string
		internal bool
	}{
		{fmt.Errorf("publish: tag too long: %w", event.ErrInvalid), 400, CodeBadRequest, false},
		{fmt.Errorf("payload of 300000 bytes exceeds 262144: %w", event.ErrTooLarge), 413, CodePayloadTooLarge, false},
		{fmt.Errorf("store: %w", event.ErrStorageFull), 507, CodeStorageFull, false},
		{fmt.Errorf("node stopping: %w", event.ErrUnavailable), 503, CodeUnavailable, false},
		{errors.New("badger: value log corrupt at 0x1f"), 500, CodeInternal, true},
	}
	for _, tc := range cases {
		t.Run(tc.code, func(t *testing.T) {
			h := newHarness(t, nil)
			tok := h.token("com.example.app")
			h.be.PublishErr = tc.err
			h.be.InfoErr = tc.err
			h.be.OffsetsErr = tc.err
			h.be.StreamErr = tc.err
			requests := []struct{ method, path, body string }{
				{http.MethodPost, PathPublish, `{"data":[{"tags":["a"],"payload":1}]}`},
				{http.MethodGet, PathNodeInfo, ""},
				{http.MethodGet, PathOffsets, ""},
				{http.MethodPost, PathQuery, `{"query":"FROM allEvents"}`},
				{http.MethodPost, PathSubscribe, `{"query":"FROM allEvents"}`},
				{http.MethodPost, PathSubscribeMonotonic, `{"session":"s","lowerBound":{},"query":"FROM allEvents"}`},
			}
			for _, rq := range requests {
				resp, body := h.do(rq.method, rq.path, tok, rq.body)
				if tc.internal {
					wantError(t, resp, body, tc.status, tc.code, "internal error")
					if strings.Contains(string(body), "badger") {
						t.Errorf("%s: internal detail leaked: %s", rq.path, body)
					}
				} else {
					// The sentinel's detail is shown.
					wantError(t, resp, body, tc.status, tc.code, strings.SplitN(tc.err.Error(), ":", 2)[0])
				}
			}
			if logs := h.logs.String(); tc.internal != strings.Contains(logs, "value log corrupt") {
				t.Errorf("internal=%v but logs = %q", tc.internal, logs)
			}
		})
	}
}

func TestHandlerPanicAnswers500(t *testing.T) {
	h := newHarness(t, nil)
	h.be.PanicInfo = true
	resp, body := h.do(http.MethodGet, PathNodeInfo, h.token("com.example.app"), "")
	wantError(t, resp, body, http.StatusInternalServerError, CodeInternal)
	if !strings.Contains(h.logs.String(), "panic") {
		t.Error("panic not logged")
	}
}

func TestErrorType(t *testing.T) {
	e := &Error{Status: 507, Code: CodeStorageFull, Message: "disk full"}
	if !errors.Is(e, event.ErrStorageFull) || errors.Is(e, event.ErrInvalid) {
		t.Error("Error does not unwrap to its sentinel")
	}
	if !strings.Contains(e.Error(), "507") || !strings.Contains(e.Error(), CodeStorageFull) {
		t.Errorf("Error() = %q", e.Error())
	}
	if (&Error{Code: CodeInternal}).Unwrap() != nil {
		t.Error("internal error unwraps to a sentinel")
	}
}

// cborOf converts a JSON value to its stored CBOR form.
func cborOf(t testing.TB, js string) []byte {
	t.Helper()
	b, err := event.PayloadFromJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
