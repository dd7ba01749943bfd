package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgelog/edgelog/api/client"
)

// legacyCommit is the last commit before the sync protocol: its nodes
// announce every head on every heartbeat and know nothing of
// /edgelog/sync/1 (docs/replication.md, "Mixed versions").
const legacyCommit = "5e135ba405a877599f54323dd11f0b48f2d71ac1"

// buildAt compiles edgelog as it was at commit, from git archive of this
// repository, once per test run.
func buildAt(t *testing.T, commit string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if bin, ok := builds.bin["@"+commit]; ok {
		return bin
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	repo := string(root[:len(root)-1])
	if err := exec.Command("git", "-C", repo, "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		t.Fatalf("commit %s is not in this repository (a shallow clone?): %v", commit[:12], err)
	}
	dir, err := os.MkdirTemp("", "edgelog-legacy-")
	if err != nil {
		t.Fatal(err)
	}
	archive := exec.Command("sh", "-c", fmt.Sprintf("git -C %q archive %s | tar -x -C %q", repo, commit, dir))
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit[:12], err, out)
	}
	bin := filepath.Join(dir, "edgelog-legacy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/edgelog")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", commit[:12], err, out)
	}
	builds.bin["@"+commit] = bin
	return bin
}

// TestMixedVersions: nodes of this version and of the one before the sync
// protocol replicate with each other, each relaying for the other kind, in
// a chain old0 - new1 - old2 - new3 (each bootstrapped to the one before,
// no mDNS, so the ends reach each other only through the middle): every
// node ends with every node's events, published before and after the
// chain formed.
func TestMixedVersions(t *testing.T) {
	needNetns(t)
	legacy := buildAt(t, legacyCommit)
	lab := newNetnsLab(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	clients := make([]*client.Client, 4)
	ids := make([]string, 4)
	for i, h := range lab.hosts {
		h.extra = []string{"--mdns=false"}
		if i%2 == 0 {
			h.bin = legacy
		}
		if i > 0 {
			h.bootPeer = []string{lab.hosts[i-1].p2pAddr(ids[i-1])}
		}
		clients[i], ids[i] = h.startClient(ctx, "mixed")
		// Events before the next node joins: it learns them by catching up.
		publishN(t, ctx, clients[i], i, 5)
	}
	for i, c := range clients {
		publishN(t, ctx, c, i, 20) // and events while all run: gossip
	}
	waitChaos(t, lab, 90*time.Second, "every node holding every node's events", func() bool {
		o, ok := agreed(ctx, clients)
		if !ok || len(o) != 4 {
			return false
		}
		for _, off := range o {
			if off != 24 {
				return false
			}
		}
		return true
	})
	for i, c := range clients {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := 2
		if i == 0 || i == 3 {
			want = 1
		}
		if info.ConnectedNodes != want {
			t.Errorf("node %d has %d peers, want %d: the chain is not a chain", i, info.ConnectedNodes, want)
		}
	}
}

func publishN(t *testing.T, ctx context.Context, c *client.Client, node, n int) {
	t.Helper()
	evs := make([]client.PublishEvent, n)
	for j := range evs {
		evs[j] = client.PublishEvent{Tags: []string{"mixed"}, Payload: json.RawMessage(fmt.Sprintf(`{"node":%d,"n":%d}`, node, j))}
	}
	if _, err := c.Publish(ctx, evs); err != nil {
		t.Fatalf("node %d: publish: %v", node, err)
	}
}
