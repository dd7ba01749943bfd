package p2p

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestOffences(t *testing.T) {
	now := time.Unix(5000, 0)
	o := newOffences(func() time.Time { return now })
	if s := o.score("p"); s != 0 {
		t.Fatalf("score without offences %v", s)
	}
	o.add("p")
	if s := o.score("p"); s != -150 {
		t.Fatalf("one offence: %v", s)
	}
	now = now.Add(time.Minute)
	o.add("p")
	if s := o.score("p"); s != -600 {
		t.Fatalf("two offences: %v", s)
	}
	if s := o.score("q"); s != 0 {
		t.Fatalf("another peer: %v", s)
	}
	for range 20 {
		o.add("p")
	}
	if s := o.score("p"); s != -150*maxOffencesPeer*maxOffencesPeer {
		t.Fatalf("offences not bounded: %v", s)
	}
	now = now.Add(2 * time.Hour)
	if s := o.score("p"); s != 0 {
		t.Fatalf("offences do not expire: %v", s)
	}
	// The peers tracked are bounded; expired ones make room.
	for i := range maxOffencePeers + 10 {
		o.add(peer.ID(fmt.Sprint(i)))
	}
	if len(o.m) > maxOffencePeers {
		t.Fatalf("%d peers tracked", len(o.m))
	}
}
