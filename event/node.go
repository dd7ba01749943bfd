package event

import "time"

// NodeInfo describes a running node.
type NodeInfo struct {
	ConnectedNodes int
	// Peers are the node's peers: connected, in its peer book, or
	// configured for bootstrap; connected first.
	Peers   []PeerInfo
	Uptime  time.Duration
	Version string
	// Consumers are the durable consumers that reported to the node, as
	// they last reported, ordered by app and name.
	Consumers []ConsumerStatus
	// Streams describes each stream held: floor, count and bytes.
	Streams map[StreamID]StreamStats
}

// StreamStats describes what a node holds of one stream.
type StreamStats struct {
	// Floor is the lowest offset held; the events below it expired.
	Floor uint64 `json:"floor"`
	// Count is the number of events held (offsets Floor up to present).
	Count uint64 `json:"count"`
	// Bytes is what they occupy in the store (records and index entries).
	Bytes int64 `json:"bytes"`
	// Retention is the stream's rule ("maxEvents=1000 maxAge=1w"), empty
	// when it keeps everything.
	Retention string `json:"retention,omitempty"`
}

// Offsets is what a node holds and what it knows to exist elsewhere.
type Offsets struct {
	Present OffsetMap
	// ToReplicate counts, per stream, events known to exist on peers but not
	// yet stored here.
	ToReplicate map[StreamID]uint64
	// Streams describes each stream held: floor, count and bytes.
	Streams map[StreamID]StreamStats
}
