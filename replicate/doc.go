// Package replicate is the core of replication: what nodes tell each other
// and decide, without a network. It does no network or disk I/O and reads
// no clock; it imports neither libp2p nor Badger. Package replicate/p2p
// runs it over libp2p; package chain proves that what moves is genuine.
//
//   - store.go: the Store a node's event store implements for replication;
//   - wire.go, frame.go: the gossip and pull messages, with bounded decoders;
//   - pull.go, pipeline.go: both sides of a pull over any io.ReadWriter
//     (Serve, ServeBlocks, Fetch), storing verified pieces while the next
//     arrive;
//   - planner.go: which range of which stream to pull from which peer, with
//     parallelism bounds, timeouts and per-peer backoff (Planner);
//   - expiry.go: floors and retention rules in announces and in the planner;
//   - backoff.go: when to redial which dropped peer (Backoff, Redials);
//   - fresh.go: which events ride along in an announce (CollectFresh) and
//     whether received ones verify (FreshRange, CheckFresh);
//   - pacer.go: when the next announce is due (own streams at once,
//     relayed ones at their own pace);
//   - errors.go: how much an error is the remote peer's fault (Blame).
//
// The edge drives the core in a loop:
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
