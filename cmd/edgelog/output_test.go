package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"iter"
	"strings"
	"testing"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/api/client"
	"github.com/edgelog/edgelog/event"
)

func lines(ls ...client.Line) iter.Seq2[client.Line, error] {
	return func(yield func(client.Line, error) bool) {
		for _, l := range ls {
			if !yield(l, nil) {
				return
			}
		}
	}
}

func TestLinePrinter(t *testing.T) {
	ev := client.Line{Type: "event", Raw: json.RawMessage(`{"type":"event","lamport":7}`), Event: &api.EventLine{Type: "event",
		Lamport: 7, Stream: "12D3KooWabc-0", Offset: 3, Timestamp: 1_700_000_000_000_000,
		Tags: []string{"a", "b"}, Payload: json.RawMessage(`{ "x" : 1 }`),
	}}
	offs := client.Line{Type: "offsets", Raw: json.RawMessage(`{"type":"offsets","offsets":{"12D3KooWabc-0":3}}`),
		Offsets: event.OffsetMap{"12D3KooWabc-0": 3}}
	unknown := client.Line{Type: "future", Raw: json.RawMessage(`{"type":"future"}`)}
	diag := client.Line{Type: "diagnostic", Raw: json.RawMessage(`{"type":"diagnostic"}`), Severity: "error", Message: "boom"}

	print := func(human bool, ls ...client.Line) (string, string, error) {
		var out, errb bytes.Buffer
		p := &linePrinter{out: bufio.NewWriter(&out), stderr: &errb, human: human}
		if err := p.print(lines(ls...)); err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), p.result()
	}

	// NDJSON: the API's lines as they came, unknown types included;
	// diagnostics on stderr and an error result.
	out, errs, err := print(false, ev, unknown, offs, diag)
	if want := string(ev.Raw) + "\n" + string(unknown.Raw) + "\n" + string(offs.Raw) + "\n"; out != want {
		t.Errorf("NDJSON output:\n%s\nwant:\n%s", out, want)
	}
	var se *silentError
	if errs != "edgelog: diagnostic: error: boom\n" || !errors.As(err, &se) {
		t.Errorf("diagnostic: stderr %q, result %v", errs, err)
	}

	// Human: a header, aligned columns, compact payload; offsets on stderr.
	out, errs, err = print(true, ev, unknown, offs)
	rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if err != nil || len(rows) != 2 {
		t.Fatalf("human output (%v):\n%s", err, out)
	}
	for _, w := range []string{"LAMPORT", "STREAM", "OFFSET", "TIME", "TAGS", "PAYLOAD"} {
		if !strings.Contains(rows[0], w) {
			t.Errorf("header %q lacks %s", rows[0], w)
		}
	}
	if f := strings.Fields(rows[1]); len(f) != 7 || f[0] != "7" || f[1] != "12D3KooWabc-0" || f[2] != "3" || f[5] != "a,b" || f[6] != `{"x":1}` {
		t.Errorf("row %q", rows[1])
	}
	if strings.Index(rows[0], "OFFSET")+len("OFFSET") != strings.Index(rows[1], " 3 ")+2 {
		t.Errorf("offset column not aligned:\n%s", out)
	}
	if !strings.Contains(errs, `1 events, up to offsets {"12D3KooWabc-0":3}`) {
		t.Errorf("human stderr %q", errs)
	}
}

func TestCheckJSON(t *testing.T) {
	for _, ok := range []string{`1`, `"s"`, `{"a":[1,2]}`, ` null `, `[]`} {
		if err := checkJSON([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{``, `  `, `{`, `1 2`, `{"a":1}x`, `nul`, `'s'`} {
		if checkJSON([]byte(bad)) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
