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
// cached in snapshots (SnapshotStore); PublishIdempotent and PublishIf
// (methods of Embedded and Remote) give idempotent and guarded publishing;
// Consume runs a durable consumer with checkpoints, retries and per-stream
// blocking. Package sdktest has a Given/When/Then harness.
//
// Node-side storage for idempotency keys, consumer checkpoints and atomic
// guarded publish does not exist yet. Until it does, the SDK keeps them in
// a KV of its own: a FileKV in the SDK's data directory (see KV). Those
// parts document what they can and cannot promise because of that.
package sdk
