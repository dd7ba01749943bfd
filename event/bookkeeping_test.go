package event

import (
	"errors"
	"strings"
	"testing"
)

func TestConflictError(t *testing.T) {
	e := &ConflictError{Changed: []Event{{Lamport: 3, Stream: "12D3KooWA-0", Offset: 1, Tags: []string{"a"}}}, More: true}
	var err error = e
	if !errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) {
		t.Fatal("ConflictError does not match ErrConflict only")
	}
	if msg := e.Error(); !strings.Contains(msg, "more than 1 event(s)") || !strings.Contains(msg, "12D3KooWA-0") {
		t.Fatalf("message %q", msg)
	}
}

func TestValidateConsumerStatus(t *testing.T) {
	long := strings.Repeat("x", 2000)
	blocked := []BlockedStream{{Stream: "12D3KooWA-0", Error: long}}
	s := ConsumerStatus{Name: "c", Checkpoint: OffsetMap{"12D3KooWA-0": 1}, Blocked: blocked}
	if err := ValidateConsumerStatus(&s); err != nil {
		t.Fatal(err)
	}
	if len(s.Blocked[0].Error) != maxConsumerErrorLen || len(blocked[0].Error) != 2000 {
		t.Fatalf("error cut to %d bytes, caller's left at %d; want %d and 2000", len(s.Blocked[0].Error), len(blocked[0].Error), maxConsumerErrorLen)
	}
	for name, bad := range map[string]ConsumerStatus{
		"no name":        {},
		"NUL":            {Name: "a\x00b"},
		"long name":      {Name: strings.Repeat("n", MaxConsumerNameLen+1)},
		"bad checkpoint": {Name: "c", Checkpoint: OffsetMap{"x": 1}},
		"bad blocked":    {Name: "c", Blocked: []BlockedStream{{Stream: ""}}},
	} {
		if err := ValidateConsumerStatus(&bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
