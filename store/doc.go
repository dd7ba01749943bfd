// Package store is a node's event store: its own streams and the copies of
// other nodes' streams it holds, in one Badger database, with the tag
// index, retention, idempotency keys, consumer status and the signed chain
// heads replication serves. It knows nothing of the network: the node
// (package node) hands it to replication (package replicate), whose Store
// interface it implements.
//
// One goroutine, the writer (writer.go), commits every change: publishes,
// ranges ingested from peers, pruning and key-value writes queue there and
// are committed together, one transaction and one fsync for whatever
// waits (group commit). Readers work on Badger snapshots and on the
// in-memory view (engine.go) of what is present.
//
// Files, by idea:
//
//   - store.go, config.go: the Store, its configuration and publish;
//   - engine.go, keys.go, migrate.go: the database, its key layout and its
//     format upgrades;
//   - writer.go: group commit, signing of the node's own heads, the disk
//     reserve;
//   - block.go, record.go, posting.go, streamindex.go: how events, tag
//     postings and per-stream runs are encoded;
//   - query.go, subscribe.go: reads, bounded and live;
//   - serve.go, ingest.go, wireblock.go: what replication reads and
//     stores, and record blocks received from peers;
//   - prune.go, drop.go: retention (decisions in package expiry) and
//     removing expired records;
//   - kv.go: idempotency keys, guards, consumer status;
//   - profile.go, trim.go, diskspace_*.go: sizing for the host.
//
// # Locks
//
// Taken in this order, never the reverse: Store.pruneMu or
// Store.compactMu, then engine.writeMu, then engine.mu, then
// expiryState.mu. engine.readMu is taken alone. Store.opsMu is held
// shared by every read for its whole duration and exclusively only by
// Close.
package store
