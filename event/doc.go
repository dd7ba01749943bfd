// Package event defines edgelog's domain types: streams, events, offset maps,
// the requests a node answers and the items its result streams carry. It is
// shared by the node, the HTTP API, the CLI and the SDK, and does no I/O.
package event
