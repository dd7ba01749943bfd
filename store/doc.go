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
//   - engine.go, keys.go, migrate.go: the database, every key prefix it
//     uses, and its format upgrades;
//   - writer.go, batch.go: group commit (one transaction for whatever
//     waits), what one batch writes, signing of the node's own heads, the
//     disk reserve;
//   - block.go, blockread.go, record.go, posting.go, streamindex.go: how
//     events, tag postings and per-stream runs are encoded and read;
//   - query.go, subscribe.go, reads.go: reads, bounded and live, and the
//     registry of running reads that drops wait for;
//   - serve.go, ingest.go, wireblock.go: what replication reads and
//     stores, and record blocks received from peers;
//   - routes.go: which stream a publish goes to, and each stream's rule;
//   - expirystate.go: per-stream floors, sizes and learnt rules;
//   - prune.go, drop.go, reclaim.go: retention (decisions in package
//     expiry) and removing what it expires;
//   - kv.go, book.go, consumers.go: the key-value store, idempotency keys
//     and guards, durable consumers' status;
//   - profile.go, memory.go, diskspace_*.go: sizing for the host and
//     handing mapped pages back.
//
// # Removing data
//
// Six verbs, each for one step, in the order data leaves:
//
//   - expire: a retention rule (package expiry) decides an event is no
//     longer kept;
//   - prune: the stream's floor rises past expired events and their index
//     entries are deleted, in one write (prune.go); they are unreadable
//     from then on;
//   - drop: whole ranges of expired records are handed to Badger's
//     DropPrefix (drop.go), once the reads that began before have ended;
//   - reclaim: the pruner compacts Badger's tables when they hold much
//     more than the events kept (reclaim.go);
//   - compact: Store.Compact, the same merge on request;
//   - trim: not data at all: resident pages of mapped files are handed
//     back to the kernel (memory.go).
//
// # Locks
//
// Taken in this order, never the reverse: Store.pruneMu or
// Store.compactMu, then engine.writeMu, then engine.mu, then
// expiryState.mu. engine.readMu is taken alone. Store.opsMu is held
// shared by every read for its whole duration and exclusively only by
// Close.
package store
