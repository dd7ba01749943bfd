// Package aql parses and evaluates edgelog's subset of the Actyx Query
// Language: an optional FEATURES(...) clause, then FROM with tag literals,
// &, |, parentheses, allEvents, isLocal, appId(...), from(time) and to(time).
// It is pure: no I/O, and it depends on no other edgelog package.
//
// aql_test.go is one long table of queries with their expected parse and
// matches, kept in one file so the grammar's cases read in one place.
package aql
