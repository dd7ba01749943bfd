package replicate

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// plannerScript drives a Planner from scenario steps and records what Next
// returns, so each test reads as a script with its expected output.
type plannerScript struct {
	t  *testing.T
	p  *Planner
	t0 time.Time
}

func newScript(t *testing.T, cfg PlannerConfig) *plannerScript {
	s := &plannerScript{t: t, p: NewPlanner(cfg), t0: time.Unix(1000, 0)}
	s.p.Tick(s.t0)
	return s
}

func (s *plannerScript) at(d time.Duration)           { s.p.Tick(s.t0.Add(d)) }
func (s *plannerScript) stored(st string, off uint64) { s.p.Stored(event.StreamID(st), off) }
func (s *plannerScript) gone(id string)               { s.p.PeerGone(PeerID(id)) }
func (s *plannerScript) done(id uint64, err error)    { s.p.PullDone(id, err) }

// announce takes "stream:offset" pairs.
func (s *plannerScript) announce(id string, heads ...string) {
	var hs []chain.Head
	for _, h := range heads {
		var st string
		var off uint64
		i := strings.LastIndexByte(h, ':')
		st = h[:i]
		fmt.Sscan(h[i+1:], &off)
		hs = append(hs, chain.Head{Stream: event.StreamID(st), Offset: off})
	}
	s.p.PeerAnnounced(PeerID(id), hs)
}

// next runs Next and checks its output, written as "start #id peer stream
// (from,to]" and "cancel #id" lines.
func (s *plannerScript) next(want ...string) {
	s.t.Helper()
	rd := s.p.Next()
	var got []string
	for _, c := range rd.Cancel {
		got = append(got, fmt.Sprintf("cancel #%d", c.ID))
	}
	for _, p := range rd.Start {
		got = append(got, fmt.Sprintf("start #%d %s %s (%d,%d]", p.ID, string(p.Peer), p.Stream, p.From, p.To))
	}
	if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
		s.t.Fatalf("Next:\n got %q\nwant %q", got, want)
	}
}

func (s *plannerScript) toReplicate(want map[event.StreamID]uint64) {
	s.t.Helper()
	if got := s.p.ToReplicate(); !reflect.DeepEqual(got, want) {
		s.t.Fatalf("ToReplicate = %v, want %v", got, want)
	}
}

func TestPlannerPullsWhatPeersHave(t *testing.T) {
	s := newScript(t, PlannerConfig{})
	s.stored("a-0", 3)
	s.next()
	s.announce("B", "a-0:10", "b-0:4")
	s.announce("C", "a-0:12", "c-0:0")
	s.toReplicate(map[event.StreamID]uint64{"a-0": 9, "b-0": 5, "c-0": 1})
	// Highest announced offset wins: C for a-0.
	s.next("start #1 C a-0 (3,12]", "start #2 B b-0 (-1,4]", "start #3 C c-0 (-1,0]")
	s.next() // one pull per stream
	s.stored("a-0", 12)
	s.done(1, nil)
	s.toReplicate(map[event.StreamID]uint64{"b-0": 5, "c-0": 1})
	s.announce("B", "a-0:14", "b-0:4")
	s.next("start #4 B a-0 (12,14]")
	// Our own data never makes us pull.
	s.stored("b-0", 9)
	s.toReplicate(map[event.StreamID]uint64{"a-0": 2, "c-0": 1})
}

func TestPlannerBoundsParallelism(t *testing.T) {
	s := newScript(t, PlannerConfig{MaxPulls: 2, MaxPullsPerPeer: 1})
	s.announce("B", "a-0:1", "b-0:1", "c-0:1")
	s.announce("C", "c-0:1")
	s.next("start #1 B a-0 (-1,1]", "start #2 C c-0 (-1,1]")
	s.next()
	s.stored("a-0", 1)
	s.done(1, nil)
	s.next("start #3 B b-0 (-1,1]")
}

func TestPlannerFailoverAndBackoff(t *testing.T) {
	s := newScript(t, PlannerConfig{BaseBackoff: time.Second, MaxBackoff: 10 * time.Second, MisbehaviourWeight: 4})
	s.announce("B", "a-0:5")
	s.announce("C", "a-0:5")
	s.next("start #1 B a-0 (-1,5]") // tie: lower peer ID
	s.done(1, ErrShortAnswer)
	s.next("start #2 C a-0 (-1,5]") // B is in backoff: another peer
	s.stored("a-0", 2)              // a verified prefix arrived before C failed
	s.done(2, fmt.Errorf("pull: %w", chain.ErrBadSignature))
	s.next() // both in backoff
	s.at(999 * time.Millisecond)
	s.next()
	s.at(time.Second) // B's first failure: 1s
	s.next("start #3 B a-0 (2,5]")
	s.done(3, ErrTimeout) // second failure: 2s
	if in, until := s.p.InBackoff("B"); !in || !until.Equal(s.t0.Add(3*time.Second)) {
		t.Fatalf("B backoff %v until %v", in, until)
	}
	// C misbehaved: 4 failures at once, 8s.
	if in, until := s.p.InBackoff("C"); !in || !until.Equal(s.t0.Add(8*time.Second)) {
		t.Fatalf("C backoff %v until %v", in, until)
	}
	s.at(3 * time.Second)
	s.next("start #4 B a-0 (2,5]")
	s.stored("a-0", 5)
	s.done(4, nil)
	s.at(4 * time.Second)
	if in, _ := s.p.InBackoff("B"); in {
		t.Fatal("B still in backoff after a success")
	}
	// Backoff is capped.
	for range 10 {
		s.p.Penalise("D", chain.ErrBrokenChain)
	}
	if _, until := s.p.InBackoff("D"); !until.Equal(s.t0.Add(14 * time.Second)) {
		t.Fatalf("D backoff until %v, want capped at 10s", until)
	}
}

func TestPlannerIdleTimeout(t *testing.T) {
	s := newScript(t, PlannerConfig{IdleTimeout: 10 * time.Second})
	s.announce("B", "a-0:100")
	s.announce("C", "a-0:100")
	s.next("start #1 B a-0 (-1,100]")
	s.at(5 * time.Second)
	s.stored("a-0", 40) // progress
	s.at(14 * time.Second)
	s.next()
	s.at(15 * time.Second)
	s.next("cancel #1", "start #2 C a-0 (40,100]")
	s.done(1, context.Canceled) // the cancelled pull reports late: ignored
	if len(s.p.InFlight()) != 1 {
		t.Fatalf("in flight %v", s.p.InFlight())
	}
	if in, _ := s.p.InBackoff("B"); !in {
		t.Fatal("a timed-out peer is not backed off")
	}
}

func TestPlannerPeerGone(t *testing.T) {
	s := newScript(t, PlannerConfig{})
	s.announce("B", "a-0:3")
	s.next("start #1 B a-0 (-1,3]")
	s.gone("B")
	s.toReplicate(map[event.StreamID]uint64{})
	s.next("cancel #1")
	if in, _ := s.p.InBackoff("B"); in {
		t.Fatal("a peer that left is not at fault")
	}
	s.announce("B", "a-0:3")
	s.next("start #2 B a-0 (-1,3]")
}

func TestPlannerShortSuccessIsFailure(t *testing.T) {
	s := newScript(t, PlannerConfig{})
	s.announce("B", "a-0:9")
	s.next("start #1 B a-0 (-1,9]")
	s.stored("a-0", 4)
	s.done(1, nil) // said it was done, but delivered only half
	if in, _ := s.p.InBackoff("B"); !in {
		t.Fatal("a peer that cannot serve what it announced is not backed off")
	}
	s.next()
	s.done(1, nil) // a duplicate report changes nothing
}

func TestPlannerStaleIsNotTheirFault(t *testing.T) {
	s := newScript(t, PlannerConfig{})
	s.announce("B", "a-0:9")
	s.next("start #1 B a-0 (-1,9]")
	s.stored("a-0", 3) // gossip delivered some meanwhile
	s.done(1, chain.ErrStale)
	s.next("start #2 B a-0 (3,9]")
}

func heads(hs ...string) []chain.Head {
	var out []chain.Head
	for _, h := range hs {
		i := strings.LastIndexByte(h, ':')
		var off uint64
		fmt.Sscan(h[i+1:], &off)
		out = append(out, chain.Head{Stream: event.StreamID(h[:i]), Offset: off})
	}
	return out
}

// TestPlannerKnowledge: what peers are known to hold only rises (deltas
// and syncs add to it), a peer that goes takes its part with it, heads
// only a sync showed wait SyncGrace, and gossip from afar leaves rumours
// until some neighbour is known to hold them.
func TestPlannerKnowledge(t *testing.T) {
	s := newScript(t, PlannerConfig{SyncGrace: 200 * time.Millisecond})
	s.announce("B", "a-0:10", "b-0:4")
	s.announce("B", "a-0:2") // a delta of another stream: a-0 stays at 10
	s.announce("C", "a-0:12")
	s.toReplicate(map[event.StreamID]uint64{"a-0": 13, "b-0": 5})
	s.gone("C") // the best holder of a-0 goes: B's 10 is what is left
	s.toReplicate(map[event.StreamID]uint64{"a-0": 11, "b-0": 5})
	s.next("start #1 B a-0 (-1,10]", "start #2 B b-0 (-1,4]")

	s.p.PeerSynced("D", heads("d-0:3", "a-0:20"))
	s.next() // d-0 waits SyncGrace; a-0 has a pull in flight
	s.at(100 * time.Millisecond)
	s.next()
	s.at(200 * time.Millisecond)
	s.next("start #3 D d-0 (-1,3]")

	s.p.Heard(heads("e-0:5", "d-0:2"))
	if n := s.p.Rumours(); n != 1 { // d-0 up to 3 is held by D
		t.Fatalf("%d rumours, want 1 (e-0)", n)
	}
	s.announce("D", "e-0:5")
	if n := s.p.Rumours(); n != 0 {
		t.Fatalf("%d rumours once D holds e-0, want 0", n)
	}
	s.p.Heard(heads("f-0:1"))
	s.at(200*time.Millisecond + rumourTTL)
	if n := s.p.Rumours(); n != 0 {
		t.Fatalf("%d rumours after their TTL, want 0", n)
	}

	// PeerEqual: the peer holds what is held here.
	s.stored("g-0", 7)
	s.p.PeerEqual("E")
	if lag, behind, ok := s.p.Lag("E"); !ok || lag != 0 || behind != 0 {
		t.Fatalf("after PeerEqual: lag %d behind %d ok %v", lag, behind, ok)
	}
}
