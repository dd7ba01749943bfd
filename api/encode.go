package api

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/edgelog/edgelog/event"
)

// appendEventLine appends the NDJSON line (with its newline) of an event.
// It is hand-written because it is the hot path of every query; the payload
// is converted from CBOR and spliced in as is. caughtUp < 0 leaves the
// "caughtUp" field out; 0 and 1 render false and true.
func appendEventLine(b []byte, e *event.Event, caughtUp int) ([]byte, error) {
	start := len(b)
	b = append(b, `{"type":"event","lamport":`...)
	b = strconv.AppendUint(b, e.Lamport, 10)
	b = append(b, `,"stream":`...)
	b = appendString(b, string(e.Stream))
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, e.Offset, 10)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, e.Timestamp, 10)
	b = append(b, `,"tags":[`...)
	for i, t := range e.Tags {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, t)
	}
	b = append(b, `],"appId":`...)
	b = appendString(b, e.AppID)
	b = append(b, `,"payload":`...)
	b, err := event.AppendPayloadJSON(b, e.Payload)
	if err != nil {
		return b[:start], fmt.Errorf("event %s: %w", e.Key(), err)
	}
	switch caughtUp {
	case 0:
		b = append(b, `,"caughtUp":false`...)
	case 1:
		b = append(b, `,"caughtUp":true`...)
	}
	return append(b, "}\n"...), nil
}

// appendString appends s as a JSON string. Plain ASCII is copied directly;
// anything else goes through encoding/json for exact escaping (including
// invalid UTF-8, which becomes U+FFFD).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // cannot fail for a string
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendItemLine appends the NDJSON line of a non-event item. ok is false
// for kinds this version does not know (they are skipped).
func appendItemLine(b []byte, it event.Item) (_ []byte, ok bool, err error) {
	var v any
	switch it.Kind {
	case event.KindOffsets:
		offs := it.Offsets
		if offs == nil {
			offs = event.OffsetMap{}
		}
		v = OffsetsLine{Type: LineOffsets, Offsets: offs}
	case event.KindTimeTravel:
		v = TimeTravelLine{Type: LineTimeTravel, NewStart: it.NewStart}
	case event.KindDiagnostic:
		sev := it.Severity
		if sev == "" {
			sev = SeverityError
		}
		v = DiagnosticLine{Type: LineDiagnostic, Severity: sev, Message: it.Message}
	default:
		return b, false, nil
	}
	line, err := json.Marshal(v)
	if err != nil {
		return b, false, err
	}
	b = append(b, line...)
	return append(b, '\n'), true, nil
}

// diagnosticLine renders a diagnostic line.
func diagnosticLine(severity, msg string) []byte {
	line, _ := json.Marshal(DiagnosticLine{Type: LineDiagnostic, Severity: severity, Message: msg})
	return append(line, '\n')
}
