package sdk

import (
	"fmt"
	"time"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// Shared domain types, aliased so that values move between the SDK and the
// rest of edgelog without conversion.
type (
	// EventKey fixes an event's place in the merged order: Lamport time,
	// then stream, then offset.
	EventKey = lamport.EventKey
	// StreamID names a stream: "<NodeID>-<n>".
	StreamID = event.StreamID
	// OffsetMap maps each stream to its highest offset present (or
	// delivered, or handled, depending on context).
	OffsetMap = event.OffsetMap
	// Meta is where a published event now stands.
	Meta = event.Meta
	// Offsets is what a node holds (Present) and what it knows to exist on
	// peers (ToReplicate).
	Offsets = event.Offsets
)

// Event is one event read from the log. Payload holds the CBOR encoding of
// the published value; Decode turns it back into a Go value.
type Event struct {
	Meta             // Lamport, Offset, Stream, Timestamp
	Tags    []string // the event's tags, as a set
	AppID   string   // the app that published it
	Payload []byte   // CBOR
}

// Key returns the event's place in the merged order.
func (e Event) Key() EventKey {
	return EventKey{Lamport: e.Lamport, Stream: string(e.Stream), Offset: e.Offset}
}

// Time returns the origin's wall-clock time of publishing (informational;
// never used for ordering).
func (e Event) Time() time.Time { return time.UnixMicro(e.Timestamp) }

// HasTag reports whether the event carries tag.
func (e Event) HasTag(tag string) bool {
	for _, t := range e.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// Decode decodes the payload into v, a pointer, with CBOR. A payload
// published as JSON (through the HTTP API) decodes as its CBOR equivalent.
func (e Event) Decode(v any) error {
	if err := event.UnmarshalCBOR(e.Payload, v); err != nil {
		return fmt.Errorf("sdk: decoding event %s: %w", e.Key(), err)
	}
	return nil
}

func fromEvent(ev *event.Event) Event {
	return Event{
		Meta:    Meta{Lamport: ev.Lamport, Offset: ev.Offset, Stream: ev.Stream, Timestamp: ev.Timestamp},
		Tags:    ev.Tags,
		AppID:   ev.AppID,
		Payload: ev.Payload,
	}
}

// Draft is an event to publish: tags and a Go value, encoded with CBOR when
// published (a RawCBOR value is used as is).
type Draft struct {
	Tags  []string
	Value any
}

// RawCBOR is a payload already encoded as CBOR.
type RawCBOR []byte

// NewDraft returns a draft of value tagged with tags (a Tag adds its name,
// an IDTag both its name and name:id).
func NewDraft(value any, tags ...Tagger) Draft {
	return Draft{Tags: TagsOf(tags...), Value: value}
}

// encodeDrafts encodes the drafts' values with CBOR.
func encodeDrafts(ds []Draft) ([]event.Draft, error) {
	if len(ds) == 0 {
		return nil, fmt.Errorf("sdk: publish: %w: no events", ErrInvalid)
	}
	out := make([]event.Draft, len(ds))
	for i, d := range ds {
		var payload []byte
		if raw, ok := d.Value.(RawCBOR); ok {
			payload = raw
		} else {
			var err error
			if payload, err = event.MarshalCBOR(d.Value); err != nil {
				return nil, fmt.Errorf("sdk: publish: %w: event %d: encoding %T: %v", ErrInvalid, i, d.Value, err)
			}
		}
		out[i] = event.Draft{Tags: d.Tags, Payload: payload}
	}
	return out, nil
}
