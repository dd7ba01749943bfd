// Package p2p runs replication (package replicate) over libp2p: the host
// and its transports, gossipsub announces with their validator and peer
// scores, pull streams, the peer book, redials and mDNS discovery.
//
//   - service.go: the Service, its configuration, the planner's loop and
//     pull streams;
//   - announce.go: announcing heads and fresh events, reading announces;
//   - gossip.go: the announce validator, peer scoring and offences;
//   - ingest.go: fresh events from announces into the store, retention
//     rules learnt from announces;
//   - peers.go, peerbook.go, discovery.go: whom to stay connected to, the
//     peer book on disk, mDNS.
//
// The planner and redial schedule key peers by replicate.PeerID, the
// bytes of their libp2p peer ID; this package converts at the boundary.
package p2p
