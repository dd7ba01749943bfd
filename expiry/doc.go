// Package expiry holds edgelog's routing and retention rules and the pure
// policy that decides which events of a stream expire.
//
// Nothing here touches a disk, a network or a clock: the node feeds the
// policy a summary of a stream's oldest events and the current time, and
// applies the floor it returns (see node/prune.go). Routing rules map a tag
// query to a named stream; retention rules bound a stream by event count,
// bytes and age.
package expiry
