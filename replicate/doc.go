// Package replicate moves events between edgelog nodes; package chain proves
// they are genuine.
//
// The package has a pure core and an I/O edge. The core does no network or
// disk I/O and reads no clock:
//
//   - wire.go, frame.go: the gossip and pull messages, with bounded decoders;
//   - planner.go: which range of which stream to pull from which peer, with
//     parallelism bounds, timeouts and per-peer backoff (Planner);
//   - backoff.go: when to redial which dropped peer (Backoff, redials);
//   - peerbook.go: the bounded set of known peers (PeerBook; Load and Save
//     are its only I/O);
//   - fresh.go: which events ride along in an announce (collectFresh) and
//     whether received ones verify (FreshRange, checkFresh);
//   - pacer.go: when the next announce is due (own streams at once,
//     relayed ones at their own pace).
//
// The node plugs in through the Store interface (store.go). The libp2p edge
// (service.go, gossip.go with the announce validator and peer scoring,
// peers.go with the peer book, redials and mDNS from discovery.go) owns the
// host, gossip and pull streams and drives the core in a loop:
//
//	for {
//		feed the Planner: PeerAnnounced / PeerGone / Stored / PullDone / Tick
//		rd := planner.Next()
//		cancel rd.Cancel; start rd.Start, each reporting PullDone when it ends
//	}
//
// # Integrity
//
// A node stores received events only up to a signed head that verifies
// (package chain), and keeps that head as a checkpoint to serve the range
// on: relays pass on the origin's signatures and cannot forge, drop from
// the middle, reorder or alter events.
package replicate
