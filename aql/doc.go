// Package aql parses and evaluates edgelog's subset of the Actyx Query
// Language: an optional FEATURES(...) clause, then FROM with tag literals,
// &, |, parentheses, allEvents, isLocal, appId(...), from(time) and to(time).
// It is pure: no I/O, and it depends on no other edgelog package.
package aql
