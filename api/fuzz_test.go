package api

import (
	"net/http"
	"testing"

	"github.com/edgelog/edgelog/event"
)

// FuzzDecodePublish feeds arbitrary bodies to the publish decoder: it must
// not panic, must answer every rejection with 400, and whatever it accepts
// must be drafts with non-empty tags and a payload that converts back to
// JSON.
func FuzzDecodePublish(f *testing.F) {
	for _, seed := range []string{
		`{"data":[{"tags":["a","b"],"payload":{"x":1}}]}`,
		`{"data":[{"tags":[],"payload":null}]}`,
		`{"data":[]}`,
		`{"data":[{"tags":["a"],"payload":[1,2.5,-3,"s",true,{"k":{}}]}],"extra":1}`,
		`{"data":[{"tags":["a"],"payload":18446744073709551615}]}`,
		`{"data":[{"tags":["a"],"payload":-9223372036854775809}]}`,
		`{"data":[{"tags":["a"],"payload":1e999}]}`,
		`{"data":[{"tags":[""],"payload":1}]}`,
		`{"data":[{"tags":[1],"payload":1}]}`,
		`{"data":[{"tags":"a","payload":1}]}`,
		`{"data":[{"payload":1}]}`,
		`{"data":[{"tags":["a"]}]}`,
		`{"data":{}}`,
		`{"data":[{"tags":["a"],"payload":"\ud800"}]}`,
		`{"data":[{"tags":["\u0000"],"payload":{"a":1,"a":2}}]}`,
		`[[[[[[[[[[`,
		`{}`,
		``,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		drafts, err := decodePublish(body)
		if err != nil {
			if err.Status != http.StatusBadRequest || err.Code != CodeBadRequest || err.Message == "" {
				t.Fatalf("rejection %+v", err)
			}
			return
		}
		for i, d := range drafts {
			for _, tag := range d.Tags {
				if tag == "" {
					t.Fatalf("draft %d accepted with an empty tag", i)
				}
			}
			if _, err := event.PayloadToJSON(d.Payload); err != nil {
				t.Fatalf("draft %d payload %x does not convert back: %v", i, d.Payload, err)
			}
		}
	})
}

// FuzzDecodeQuery checks the query decoder likewise: no panic, 400 for every
// rejection, and only valid stream ids in accepted bounds.
func FuzzDecodeQuery(f *testing.F) {
	for _, seed := range []string{
		`{"query":"FROM allEvents"}`,
		`{"lowerBound":{"abc-0":1},"upperBound":{"abc-0":5},"query":"FROM 'a'","order":"desc"}`,
		`{"lowerBound":{"abc-0":-1},"query":"FROM 'a'"}`,
		`{"upperBound":{},"query":"FROM 'a'","order":"stream-asc"}`,
		`{"query":"FROM"}`,
		`{"query":5}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeQuery(body)
		if err != nil {
			if err.Status != http.StatusBadRequest || (err.Code != CodeBadRequest && err.Code != CodeBadQuery) {
				t.Fatalf("rejection %+v", err)
			}
			return
		}
		if req.Query == nil {
			t.Fatal("accepted without a parsed query")
		}
		for _, m := range []event.OffsetMap{req.Lower, req.Upper} {
			for s := range m {
				if !s.Valid() {
					t.Fatalf("accepted invalid stream id %q", s)
				}
			}
		}
	})
}
