package event

import (
	"github.com/edgelog/edgelog/lamport"
)

// Event is one stored event. Payload holds the CBOR encoding (core
// deterministic) of the published value; the HTTP API converts it to and
// from JSON.
type Event struct {
	Lamport   uint64   // Lamport time stamped by the origin
	Stream    StreamID // the origin's stream
	Offset    uint64   // position in Stream, gapless from 0
	Timestamp int64    // origin's wall clock, microseconds since the Unix epoch
	Tags      []string // a set of non-empty tags
	AppID     string   // the app that published it
	Payload   []byte   // CBOR
}

// Key returns the event's place in the merged order.
func (e *Event) Key() lamport.EventKey {
	return lamport.EventKey{Lamport: e.Lamport, Stream: string(e.Stream), Offset: e.Offset}
}

// HasTag reports whether the event carries tag.
func (e *Event) HasTag(tag string) bool {
	for _, t := range e.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// Draft is an event as an app submits it: the node assigns everything else.
type Draft struct {
	Tags    []string
	Payload []byte // CBOR
}

// Meta is what publishing one event returns: where the event now stands.
type Meta struct {
	Lamport   uint64   `json:"lamport"`
	Offset    uint64   `json:"offset"`
	Stream    StreamID `json:"stream"`
	Timestamp int64    `json:"timestamp"`
}
