// Package sdk is the Go SDK of edgelog: one EventLog interface with two
// implementations, and event sourcing on top of it.
//
//   - Embedded (Open) runs a node inside the app's process, optionally also
//     serving the HTTP Events API (WithHTTP).
//   - Remote (Dial) talks to a running node over the HTTP Events API. Its
//     subscriptions survive node restarts: they reconnect with backoff and
//     resume after the last delivered event, with no gap and no duplicate.
//
// Events carry Go values encoded with CBOR (Draft, Event.Decode). Tags are
// built with Tag: Tag("machine").WithID("7") tags an event with both
// "machine" and "machine:7" (the Actyx convention), and selects "machine:7"
// in a query. Queries are built in Go (Where(Tag("a").And(Tag("b")))) or
// written in AQL (AQL("FROM 'a' & 'b'")).
//
// On top of EventLog: Aggregate folds the events of a query into a state,
// cached in snapshots (SnapshotStore); PublishWith (with PublishIdempotent
// and PublishIf as shorthands on Embedded and Remote) gives idempotent and
// guarded publishing; Consume runs a durable consumer with checkpoints,
// retries and per-stream blocking. Package sdktest has a Given/When/Then
// harness.
//
// The node does the bookkeeping, for an embedded node and a remote one
// alike: it records idempotency keys in the same transaction as the events
// (so a retry after a crash, a restart or concurrently with the first
// attempt returns the original metas), checks guards inside its writer
// (atomic with the write, against every other writer of the node), and
// keeps consumers' checkpoints and status, which node info shows.
//
// What a guarded publish cannot promise in a partitioned swarm: the node
// knows only the events it holds. Events written meanwhile on nodes it
// cannot reach are not seen, so two nodes can both pass the guard for the
// same entity; the conflict shows later, when the events replicate, as time
// travel. Design reducers to resolve such conflicts deterministically.
package sdk
