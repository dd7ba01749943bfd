// Package lamport holds edgelog's ordering core: the Lamport clock, the EventKey
// that totally orders events across streams, and a k-way merge of key-ordered
// sequences.
//
// The package is pure: it performs no I/O and reads no wall clock. Persisting
// the clock is the caller's job (the node stores it in the same transaction as
// the events it stamps), which is what lets it never go back across restarts.
package lamport
