// Package promises checks, after a test has thrown faults at a swarm, that
// edgelog kept the promises it makes about acknowledged events. A test
// records in a Ledger every event it tries to publish and every
// acknowledgement it gets, then reads each node's merged view and hands the
// views to Check, which reports every broken promise:
//
//   - every acknowledged event is on every node, where its acknowledgement
//     put it (stream, offset, Lamport time), with the tags it was published
//     with;
//   - no node holds an event that was never published, or one event twice;
//   - every stream's offsets are gapless from 0 on every node;
//   - Lamport times grow with offsets inside each stream;
//   - every view is in merged order, (lamport, stream), and all views are
//     identical.
//
// Events are told apart by an ID the test puts into each payload; the
// caller extracts it when it builds a view. The package does no I/O, so
// the same checker serves in-process clusters and real processes.
package promises

import (
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// Ledger records what a test published. Attempt is called before an event
// is sent and Ack when its publish was acknowledged; a publish that failed
// (the node died, the request timed out) stays an attempt: the event may or
// may not be stored, but it must not be stored twice. A Ledger is safe for
// concurrent use.
type Ledger struct {
	mu       sync.Mutex
	attempts map[string][]string // ID -> tags
	acks     map[string]event.Meta
}

// NewLedger returns an empty Ledger.
func NewLedger() *Ledger {
	return &Ledger{attempts: map[string][]string{}, acks: map[string]event.Meta{}}
}

// Attempt records that an event with id and tags is about to be published.
// IDs must be unique across the test.
func (l *Ledger) Attempt(id string, tags []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts[id] = slices.Clone(tags)
}

// Ack records the node's acknowledgement of the attempted event id.
func (l *Ledger) Ack(id string, m event.Meta) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks[id] = m
}

// Counts returns how many events were attempted and acknowledged so far.
func (l *Ledger) Counts() (attempted, acked int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.attempts), len(l.acks)
}

// Stored is one event as a node answered it.
type Stored struct {
	ID      string // the ID the test put into the payload ("" if it had none)
	Stream  event.StreamID
	Offset  uint64
	Lamport uint64
	Tags    []string
}

func (s Stored) key() lamport.EventKey {
	return lamport.EventKey{Lamport: s.Lamport, Stream: string(s.Stream), Offset: s.Offset}
}

// View is one node's answer to a query for every event the test published,
// in the order the node gave them.
type View struct {
	Node   string // a name for the reports
	Events []Stored
}

// Report is the outcome of Check.
type Report struct {
	Attempted, Acked int // from the ledger
	Stored           int // events in the first view
	// Lost counts acknowledged events missing from at least one view.
	Lost int
	// Violations lists every broken promise, at most maxViolations of
	// them, each naming the node and event; empty means all were kept.
	Violations []string
	// Truncated reports that more violations were found than listed.
	Truncated bool
}

// OK reports whether every promise was kept.
func (r Report) OK() bool { return len(r.Violations) == 0 }

const maxViolations = 50

func (r *Report) add(format string, args ...any) {
	if len(r.Violations) == maxViolations {
		r.Truncated = true
		return
	}
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

// Check compares the views with the ledger and with each other. It must be
// called after the test's publishers have stopped.
func Check(l *Ledger, views []View) Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := Report{Attempted: len(l.attempts), Acked: len(l.acks)}
	if len(views) == 0 {
		r.add("no views to check")
		return r
	}
	r.Stored = len(views[0].Events)
	lost := map[string]bool{}
	for _, v := range views {
		checkView(&r, l, v, lost)
	}
	r.Lost = len(lost)
	ref := views[0]
	for _, v := range views[1:] {
		if i, ok := firstDifference(ref.Events, v.Events); !ok {
			r.add("%s and %s differ at position %d of %d and %d: %s vs %s", ref.Node, v.Node, i,
				len(ref.Events), len(v.Events), describeAt(ref.Events, i), describeAt(v.Events, i))
		}
	}
	return r
}

// checkView checks one view on its own and against the ledger; acknowledged
// IDs it lacks are added to lost.
func checkView(r *Report, l *Ledger, v View, lost map[string]bool) {
	byID := make(map[string]Stored, len(v.Events))
	streams := map[event.StreamID][]Stored{}
	for i, e := range v.Events {
		if i > 0 && !v.Events[i-1].key().Less(e.key()) {
			r.add("%s: not in merged order at position %d: %s after %s", v.Node, i, describe(e), describe(v.Events[i-1]))
		}
		tags, attempted := l.attempts[e.ID]
		switch {
		case !attempted:
			r.add("%s: holds %s, which was never published", v.Node, describe(e))
		case !sameSet(tags, e.Tags):
			r.add("%s: %s has tags %q, published with %q", v.Node, describe(e), e.Tags, tags)
		}
		if prev, dup := byID[e.ID]; dup && attempted {
			r.add("%s: holds event %q twice: %s and %s", v.Node, e.ID, describe(prev), describe(e))
		}
		byID[e.ID] = e
		streams[e.Stream] = append(streams[e.Stream], e)
	}
	for stream, evs := range streams {
		sort.Slice(evs, func(i, j int) bool { return evs[i].Offset < evs[j].Offset })
		for i, e := range evs {
			if e.Offset != uint64(i) {
				r.add("%s: stream %s not gapless: offset %d where %d was due", v.Node, stream, e.Offset, i)
				break
			}
			if i > 0 && e.Lamport <= evs[i-1].Lamport {
				r.add("%s: stream %s: Lamport %d at offset %d not above %d at offset %d", v.Node, stream, e.Lamport, e.Offset, evs[i-1].Lamport, i-1)
			}
		}
	}
	for id, m := range l.acks {
		e, ok := byID[id]
		switch {
		case !ok:
			lost[id] = true
			if len(lost) <= 10 {
				r.add("%s: acknowledged event %q (%s/%d, lamport %d) is missing", v.Node, id, m.Stream, m.Offset, m.Lamport)
			}
		case e.Stream != m.Stream || e.Offset != m.Offset || e.Lamport != m.Lamport:
			r.add("%s: acknowledged event %q at %s/%d lamport %d is stored as %s", v.Node, id, m.Stream, m.Offset, m.Lamport, describe(e))
		}
	}
}

// firstDifference returns the first position where a and b differ, and
// whether they are equal.
func firstDifference(a, b []Stored) (int, bool) {
	for i := range min(len(a), len(b)) {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.key() != y.key() || !slices.Equal(x.Tags, y.Tags) {
			return i, false
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b)), false
	}
	return 0, true
}

func describeAt(evs []Stored, i int) string {
	if i >= len(evs) {
		return "(end)"
	}
	return describe(evs[i])
}

func describe(e Stored) string {
	return fmt.Sprintf("%q at %s/%d lamport %d", e.ID, e.Stream, e.Offset, e.Lamport)
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}
