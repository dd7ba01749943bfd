package event

import "time"

// PeerInfo describes one peer of a node, as the node sees it: a peer it is
// connected to, one in its peer book, or a configured bootstrap peer.
type PeerInfo struct {
	// NodeID is the peer's NodeId.
	NodeID string `json:"nodeId"`
	// Addrs are the multiaddrs it is connected at, or was last seen at.
	Addrs []string `json:"addrs"`
	// Connected is true while the node has a connection to it.
	Connected bool `json:"connected"`
	// Bootstrap marks a configured bootstrap peer.
	Bootstrap bool `json:"bootstrap,omitempty"`
	// LastSeen is when it was last connected, if known.
	LastSeen time.Time `json:"lastSeen,omitzero"`
	// Announced is true once the peer's gossip announce arrived since it
	// connected; Lag and Behind are meaningful only then.
	Announced bool `json:"announced"`
	// Lag is the number of events the peer announced that this node does
	// not hold yet (summed over streams), which replication is to pull.
	Lag uint64 `json:"lag"`
	// Behind is the number of events this node holds that the peer's
	// latest announce lacks (summed over streams), which it is to pull.
	Behind uint64 `json:"behind"`
	// Score is the peer's gossip score; negative after invalid messages.
	Score float64 `json:"score"`
}
