package main

import (
	"bytes"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/edgelog/edgelog/event"
)

func TestWritePeers(t *testing.T) {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	writePeers(tw, []event.PeerInfo{
		{NodeID: "12D3KooWA", Addrs: []string{"/ip4/10.0.0.2/tcp/4455", "/ip4/10.0.0.2/udp/4455/quic-v1"}, Connected: true, Bootstrap: true, Announced: true, Lag: 7, Behind: 2},
		{NodeID: "12D3KooWB", Addrs: []string{"/ip4/10.0.0.3/tcp/4455"}, Score: -100},
	})
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	out := strings.Join(strings.Fields(buf.String()), " ")
	for _, want := range []string{
		"peers 2 ",
		"12D3KooWA connected, bootstrap, lag 7 (we lack), behind 2 (it lacks) address /ip4/10.0.0.2/tcp/4455 address /ip4/10.0.0.2/udp/4455/quic-v1 ",
		"12D3KooWB disconnected, lag unknown (no announce yet), gossip score -100 address /ip4/10.0.0.3/tcp/4455",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
