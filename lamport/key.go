package lamport

import (
	"cmp"
	"fmt"
	"strings"
)

// EventKey identifies an event and fixes its place in the merged order of all
// streams: by Lamport time, then stream ID (byte-wise), then offset. Every node
// holding the same events orders them the same way, and within one stream the
// order equals offset order because an origin stamps increasing Lamport times.
type EventKey struct {
	Lamport uint64 `json:"lamport"`
	Stream  string `json:"stream"`
	Offset  uint64 `json:"offset"`
}

// Compare returns -1, 0 or +1 as a sorts before, equal to, or after b.
func Compare(a, b EventKey) int {
	if c := cmp.Compare(a.Lamport, b.Lamport); c != 0 {
		return c
	}
	if c := strings.Compare(a.Stream, b.Stream); c != 0 {
		return c
	}
	return cmp.Compare(a.Offset, b.Offset)
}

// Less reports whether k sorts before o.
func (k EventKey) Less(o EventKey) bool { return Compare(k, o) < 0 }

// String renders the key as lamport/stream/offset, for logs and errors.
func (k EventKey) String() string {
	return fmt.Sprintf("%d/%s/%d", k.Lamport, k.Stream, k.Offset)
}
