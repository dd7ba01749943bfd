package event

import "time"

// NodeInfo describes a running node.
type NodeInfo struct {
	ConnectedNodes int
	Uptime         time.Duration
	Version        string
}

// Offsets is what a node holds and what it knows to exist elsewhere.
type Offsets struct {
	Present OffsetMap
	// ToReplicate counts, per stream, events known to exist on peers but not
	// yet stored here.
	ToReplicate map[StreamID]uint64
}
