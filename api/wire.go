package api

import (
	"encoding/json"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// BasePath is the path prefix of every endpoint.
const BasePath = "/api/v2"

// Endpoint paths, below BasePath.
const (
	PathAuth               = BasePath + "/auth"                       // POST AuthRequest -> AuthResponse
	PathNodeID             = BasePath + "/node/id"                    // GET -> the node id as text/plain
	PathNodeInfo           = BasePath + "/node/info"                  // GET -> NodeInfoResponse
	PathOffsets            = BasePath + "/events/offsets"             // GET -> OffsetsResponse
	PathPublish            = BasePath + "/events/publish"             // POST PublishRequest -> PublishResponse
	PathQuery              = BasePath + "/events/query"               // POST QueryRequest -> NDJSON
	PathSubscribe          = BasePath + "/events/subscribe"           // POST SubscribeRequest -> NDJSON
	PathSubscribeMonotonic = BasePath + "/events/subscribe_monotonic" // POST SubscribeMonotonicRequest -> NDJSON
	PathConsumerGet        = BasePath + "/consumers/get"              // POST ConsumerGetRequest -> event.ConsumerStatus
	PathConsumerPut        = BasePath + "/consumers/put"              // POST event.ConsumerStatus -> {}
)

// ContentTypeNDJSON is the content type of streamed answers: one JSON value
// per line.
const ContentTypeNDJSON = "application/x-ndjson"

// Line types of streamed answers. Clients must ignore types they do not know.
const (
	LineEvent      = "event"      // an event; see EventLine
	LineOffsets    = "offsets"    // an offsets marker; see OffsetsLine
	LineTimeTravel = "timeTravel" // a time travel; see TimeTravelLine
	LineDiagnostic = "diagnostic" // a diagnostic; see DiagnosticLine
)

// Diagnostic severities.
const (
	SeverityWarning = "warning" // something was skipped; the stream goes on
	SeverityError   = "error"   // the stream ends after this line
)

// AuthRequest is the body of POST /auth: the app's manifest.
type AuthRequest struct {
	AppID       string `json:"appId"`
	DisplayName string `json:"displayName,omitempty"`
	Version     string `json:"version,omitempty"`
}

// AuthResponse is the answer of POST /auth.
type AuthResponse struct {
	// Token goes into the Authorization header of every other call as
	// "Bearer <token>".
	Token string `json:"token"`
}

// Uptime is a duration as whole seconds plus nanoseconds.
type Uptime struct {
	Secs  uint64 `json:"secs"`
	Nanos uint32 `json:"nanos"`
}

// NodeInfoResponse is the answer of GET /node/info.
type NodeInfoResponse struct {
	ConnectedNodes int `json:"connectedNodes"`
	// Peers are the node's peers, connected first, with their addresses
	// and lag (see event.PeerInfo); empty when replication is off.
	Peers   []event.PeerInfo `json:"peers"`
	Uptime  Uptime           `json:"uptime"`
	Version string           `json:"version"`
	// Consumers are the durable consumers that reported to the node (see
	// PathConsumerPut), as they last reported; absent if none did.
	Consumers []event.ConsumerStatus `json:"consumers,omitempty"`
	// Streams describes each stream held: its floor (lowest offset held;
	// below it events expired), count and bytes, and its retention rule.
	Streams map[event.StreamID]event.StreamStats `json:"streams,omitempty"`
}

// OffsetsResponse is the answer of GET /events/offsets.
type OffsetsResponse struct {
	// Present maps each stream to the highest offset stored here without gap.
	Present event.OffsetMap `json:"present"`
	// ToReplicate counts, per stream, events known to exist on peers but not
	// yet stored here.
	ToReplicate map[event.StreamID]uint64 `json:"toReplicate"`
	// Streams describes each stream held: floor, count, bytes, retention.
	Streams map[event.StreamID]event.StreamStats `json:"streams,omitempty"`
}

// PublishEvent is one event to publish: its tags and its payload, any JSON
// value.
type PublishEvent struct {
	Tags    []string        `json:"tags"`
	Payload json.RawMessage `json:"payload"`
}

// PublishRequest is the body of POST /events/publish.
type PublishRequest struct {
	Data []PublishEvent `json:"data"`
	// IdempotencyKey, if set, makes the publish idempotent for the app: a
	// retry with the same key returns the first answer and stores nothing;
	// the same key with other events is a 409 ERR_IDEMPOTENCY_MISMATCH.
	// At most 256 bytes.
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	// IfNoneMatchSince, if set, publishes only if the node holds no event
	// selected by its query that sorts after its key; otherwise nothing is
	// stored and the answer is 409 ERR_CONFLICT listing those events.
	IfNoneMatchSince *Guard `json:"ifNoneMatchSince,omitempty"`
}

// Guard is the condition of a guarded publish (PublishRequest).
type Guard struct {
	// Query is the AQL query of the events the decision depends on.
	Query string `json:"query"`
	// After is the key of the last such event the decision saw; absent
	// (the zero key) means none, so any selected event conflicts.
	After lamport.EventKey `json:"after,omitzero"`
}

// ConsumerGetRequest is the body of POST /consumers/get.
type ConsumerGetRequest struct {
	// Name is the consumer's name; consumers are kept per app.
	Name string `json:"name"`
}

// PublishResponse is the answer of POST /events/publish: one entry per
// published event, in request order.
type PublishResponse struct {
	Data []event.Meta `json:"data"`
}

// QueryRequest is the body of POST /events/query.
type QueryRequest struct {
	// LowerBound is exclusive; a stream missing from it is read from its
	// start.
	LowerBound event.OffsetMap `json:"lowerBound,omitzero"`
	// UpperBound is inclusive. Absent (nil) means what is present when the
	// query starts; a stream missing from a given UpperBound is not read, so
	// an empty map reads nothing.
	UpperBound event.OffsetMap `json:"upperBound,omitzero"`
	// Query is the AQL query.
	Query string `json:"query"`
	// Order is "asc" (the default), "desc" or "stream-asc".
	Order string `json:"order,omitempty"`
}

// SubscribeRequest is the body of POST /events/subscribe.
type SubscribeRequest struct {
	// LowerBound is exclusive; a stream missing from it is read from its
	// start.
	LowerBound event.OffsetMap `json:"lowerBound,omitzero"`
	// Query is the AQL query.
	Query string `json:"query"`
}

// SubscribeMonotonicRequest is the body of POST /events/subscribe_monotonic.
type SubscribeMonotonicRequest struct {
	// Session names the subscription; it must not be empty.
	Session string `json:"session"`
	// LowerBound is exclusive; a stream missing from it is read from its
	// start.
	LowerBound event.OffsetMap `json:"lowerBound"`
	// Query is the AQL query.
	Query string `json:"query"`
}

// EventLine is a streamed line of type "event".
type EventLine struct {
	Type      string          `json:"type"`
	Lamport   uint64          `json:"lamport"`
	Stream    event.StreamID  `json:"stream"`
	Offset    uint64          `json:"offset"`
	Timestamp int64           `json:"timestamp"`
	Tags      []string        `json:"tags"`
	AppID     string          `json:"appId"`
	Payload   json.RawMessage `json:"payload"`
	// CaughtUp is present only on lines of subscribe_monotonic: true when
	// the event is the last one currently known.
	CaughtUp *bool `json:"caughtUp,omitempty"`
}

// Key returns the event's place in the merged order.
func (e *EventLine) Key() lamport.EventKey {
	return lamport.EventKey{Lamport: e.Lamport, Stream: string(e.Stream), Offset: e.Offset}
}

// OffsetsLine is a streamed line of type "offsets": everything up to
// Offsets has been delivered.
type OffsetsLine struct {
	Type    string          `json:"type"`
	Offsets event.OffsetMap `json:"offsets"`
}

// TimeTravelLine is a streamed line of type "timeTravel": an event older than
// one already delivered arrived; the stream ends and the client rebuilds
// from NewStart.
type TimeTravelLine struct {
	Type     string           `json:"type"`
	NewStart lamport.EventKey `json:"newStart"`
}

// DiagnosticLine is a streamed line of type "diagnostic". A diagnostic of
// severity "error" ends the stream.
type DiagnosticLine struct {
	Type     string `json:"type"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}
