package expiry

import "github.com/edgelog/edgelog/event"

// StreamExpiry is what a node tells its peers about a stream beyond its
// head: how far the stream expired here and, from the stream's origin, the
// rule it expires by.
type StreamExpiry struct {
	Stream event.StreamID
	// Floor is the lowest offset held; offsets below it expired.
	Floor uint64
	// Retention is the stream's rule, set by its origin only.
	Retention    Retention
	HasRetention bool
}
