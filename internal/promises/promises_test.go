package promises

import (
	"strings"
	"testing"

	"github.com/edgelog/edgelog/event"
)

// swarm builds a ledger with three acknowledged events on two streams and
// one attempt that was never acknowledged, and a view holding all four.
func swarm() (*Ledger, []Stored) {
	l := NewLedger()
	evs := []Stored{
		{ID: "a0", Stream: "A-0", Offset: 0, Lamport: 1, Tags: []string{"t"}},
		{ID: "b0", Stream: "B-0", Offset: 0, Lamport: 1, Tags: []string{"t"}},
		{ID: "a1", Stream: "A-0", Offset: 1, Lamport: 2, Tags: []string{"t", "u"}},
		{ID: "b1", Stream: "B-0", Offset: 1, Lamport: 5, Tags: []string{"t"}},
	}
	for _, e := range evs {
		l.Attempt(e.ID, e.Tags)
		if e.ID != "b1" { // b1's publish was cut off: not acknowledged, yet stored
			l.Ack(e.ID, event.Meta{Stream: e.Stream, Offset: e.Offset, Lamport: e.Lamport})
		}
	}
	l.Attempt("lostAttempt", []string{"t"}) // never stored: allowed
	return l, evs
}

func clone(evs []Stored) []Stored { return append([]Stored(nil), evs...) }

func TestCheckKeptPromises(t *testing.T) {
	l, evs := swarm()
	r := Check(l, []View{{"n1", evs}, {"n2", clone(evs)}})
	if !r.OK() {
		t.Fatalf("violations: %v", r.Violations)
	}
	if r.Attempted != 5 || r.Acked != 3 || r.Stored != 4 || r.Lost != 0 {
		t.Errorf("report %+v", r)
	}
}

// TestCheckFindsEachBrokenPromise breaks one promise at a time and expects
// a violation that names it.
func TestCheckFindsEachBrokenPromise(t *testing.T) {
	cases := []struct {
		name   string
		mutate func([]Stored) []Stored
		want   string
	}{
		{"acknowledged event lost", func(e []Stored) []Stored { return append(e[:2:2], e[3]) }, `acknowledged event "a1"`},
		{"never published", func(e []Stored) []Stored {
			return append(e, Stored{ID: "ghost", Stream: "C-0", Offset: 0, Lamport: 9, Tags: []string{"t"}})
		}, "never published"},
		{"stored twice", func(e []Stored) []Stored {
			return append(e, Stored{ID: "a0", Stream: "B-0", Offset: 2, Lamport: 9, Tags: []string{"t"}})
		}, "twice"},
		{"gap", func(e []Stored) []Stored { e[3].Offset = 2; return e }, "not gapless"},
		{"tags changed", func(e []Stored) []Stored { e[2].Tags = []string{"t"}; return e }, "published with"},
		{"moved", func(e []Stored) []Stored { e[2].Lamport = 3; return e }, "is stored as"},
		{"not merged order", func(e []Stored) []Stored { e[0], e[1] = e[1], e[0]; return e }, "merged order"},
		{"lamport against offsets", func(e []Stored) []Stored {
			e[3].Lamport = 1
			return []Stored{e[0], e[1], e[3], e[2]}
		}, "Lamport 1 at offset 1 not above"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, evs := swarm()
			r := Check(l, []View{{"good", clone(evs)}, {"bad", c.mutate(clone(evs))}})
			if r.OK() {
				t.Fatal("no violation found")
			}
			all := strings.Join(r.Violations, "\n")
			if !strings.Contains(all, "bad:") && !strings.Contains(all, "good and bad differ") {
				t.Errorf("violations do not name the bad node: %s", all)
			}
			if !strings.Contains(all, c.want) {
				t.Errorf("violations do not say %q:\n%s", c.want, all)
			}
			if !strings.Contains(all, "good and bad differ") {
				t.Errorf("the views differ but no difference was reported:\n%s", all)
			}
		})
	}
}

func TestCheckCountsLostOnce(t *testing.T) {
	l, evs := swarm()
	short := evs[:3] // b1 was never acknowledged: nothing lost
	r := Check(l, []View{{"n1", clone(short)}, {"n2", clone(short)}})
	if !r.OK() || r.Lost != 0 {
		t.Fatalf("report %+v", r)
	}
	none := []Stored{}
	r = Check(l, []View{{"n1", none}, {"n2", none}})
	if r.Lost != 3 {
		t.Errorf("lost %d, want 3 (each counted once over both views)", r.Lost)
	}
}

func TestCheckBoundsItsReport(t *testing.T) {
	l := NewLedger()
	var evs []Stored
	for i := range 200 {
		evs = append(evs, Stored{ID: "x", Stream: "A-0", Offset: uint64(i), Lamport: uint64(i + 1)})
	}
	r := Check(l, []View{{"n", evs}})
	if len(r.Violations) != maxViolations || !r.Truncated {
		t.Errorf("%d violations, truncated %v", len(r.Violations), r.Truncated)
	}
	if r := Check(l, nil); r.OK() {
		t.Error("no views passed the check")
	}
}
