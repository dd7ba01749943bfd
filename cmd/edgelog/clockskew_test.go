package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgelog/edgelog/api/client"
	"github.com/edgelog/edgelog/event"
)

// TestClockSkewProcess: two real edgelog processes in network namespaces,
// built with -tags testclock so that their wall clocks can be shifted: A's
// runs 72 h ahead, B's 72 h behind, and both keep stream 0 for maxAge 24h.
// Tokens work on both (a node checks only its own, by its own clock).
// Every event is stamped with its origin's clock; A expires B's events as
// they arrive (144 h old by its clock) while B keeps A's (they look new);
// each keeps its own. The merged order is the Lamport order on both, not
// the timestamps'. (node's TestClockSkew covers the same with a correct
// third node, in virtual time.)
func TestClockSkewProcess(t *testing.T) {
	needNetns(t)
	bin, err := buildTagged("testclock")
	if err != nil {
		t.Fatal(err)
	}
	lab := newNetnsLab(t, 2)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("streams:\n  default: {maxAge: 24h}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	skews := []time.Duration{72 * time.Hour, -72 * time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	clients := make([]*client.Client, 2)
	for i, h := range lab.hosts {
		h.bin, h.extra = bin, []string{"--config", cfg}
		h.env = []string{fmt.Sprintf("EDGELOG_TESTCLOCK_SHIFT=%v", skews[i])}
		clients[i] = labClient(t, h.start())
		id, err := clients[i].NodeID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			lab.hosts[1].bootPeer = []string{h.p2pAddr(id)}
		}
	}
	streams := make([]event.StreamID, 2)
	for range 2 {
		for i, c := range clients {
			evs := make([]client.PublishEvent, 5)
			for j := range evs {
				evs[j] = client.PublishEvent{Tags: []string{"skew"}, Payload: json.RawMessage(fmt.Sprint(j))}
			}
			metas, err := c.Publish(ctx, evs)
			if err != nil {
				t.Fatalf("publish on host %d: %v", i, err)
			}
			streams[i] = metas[0].Stream
			if d := time.Duration(metas[0].Timestamp-time.Now().UnixMicro()) * time.Microsecond; d < skews[i]-time.Minute || d > skews[i]+time.Minute {
				t.Fatalf("host %d stamped its event %v from now; its clock is %v off", i, d, skews[i])
			}
		}
	}
	// count[i][j]: how many events of host j's stream host i keeps.
	want := [2][2]uint64{{10, 0}, {10, 10}}
	var got [2][2]uint64
	waitChaos(t, lab, 90*time.Second, "retention by each node's own clock", func() bool {
		for i, c := range clients {
			o, err := c.Offsets(ctx)
			if err != nil {
				return false
			}
			for j, s := range streams {
				if o.Present[s] != 9 {
					return false
				}
				got[i][j] = o.Streams[s].Count
			}
		}
		return got == want
	})
	views := make([][]*event.Event, 2)
	for i, c := range clients {
		for line, err := range c.Query(ctx, client.QueryRequest{Query: "FROM 'skew'"}) {
			if err != nil {
				t.Fatal(err)
			}
			if line.Type == "event" {
				e := line.Event
				views[i] = append(views[i], &event.Event{Lamport: e.Lamport, Stream: e.Stream, Offset: e.Offset, Timestamp: e.Timestamp})
			}
		}
	}
	backwards := 0
	for k := 1; k < len(views[1]); k++ {
		if !views[1][k-1].Key().Less(views[1][k].Key()) {
			t.Fatalf("B: merged order broken at %d", k)
		}
		if views[1][k].Timestamp < views[1][k-1].Timestamp {
			backwards++
		}
	}
	var onA []*event.Event
	for _, e := range views[1] {
		if e.Stream == streams[0] {
			onA = append(onA, e)
		}
	}
	if len(views[0]) != len(onA) {
		t.Fatalf("A shows %d events, B shows %d of A's", len(views[0]), len(onA))
	}
	for k := range onA {
		if views[0][k].Key() != onA[k].Key() || views[0][k].Timestamp != onA[k].Timestamp {
			t.Fatalf("position %d: A shows %+v, B %+v", k, *views[0][k], *onA[k])
		}
	}
	t.Logf("clocks +72h and -72h, maxAge 24h: events kept per stream %v; B's merged order goes back in time %d times of %d", got, backwards, len(views[1])-1)
	if backwards == 0 {
		t.Error("B's merged order followed the timestamps: the test shows nothing")
	}
}
