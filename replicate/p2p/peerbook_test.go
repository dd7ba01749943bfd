package p2p

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

func testPeerID(t *testing.T) peer.ID {
	t.Helper()
	return newOrigin(t).ID
}

func addrs(t *testing.T, ss ...string) []multiaddr.Multiaddr {
	t.Helper()
	var out []multiaddr.Multiaddr
	for _, s := range ss {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestPeerBookBounded(t *testing.T) {
	b := NewPeerBook(3)
	t0 := time.Unix(1_700_000_000, 0).UTC()
	var ids []peer.ID
	for i := range 5 {
		id := testPeerID(t)
		ids = append(ids, id)
		if !b.Seen(id, addrs(t, fmt.Sprintf("/ip4/10.0.0.%d/tcp/4455", i+1)), t0.Add(time.Duration(i)*time.Hour)) {
			t.Fatal("a new peer did not change the book")
		}
	}
	if b.Len() != 3 {
		t.Fatalf("book holds %d peers, bound 3", b.Len())
	}
	// The least recently seen were evicted; the newest come first.
	es := b.Entries()
	for i, want := range []peer.ID{ids[4], ids[3], ids[2]} {
		if es[i].ID != want {
			t.Fatalf("entry %d is %s, want %s", i, es[i].ID, want)
		}
	}
	// Seeing a peer again with the same addresses is no change (within a
	// minute); new addresses are.
	if b.Seen(ids[4], addrs(t, "/ip4/10.0.0.5/tcp/4455"), t0.Add(4*time.Hour+time.Second)) {
		t.Fatal("same addresses counted as a change")
	}
	if !b.Seen(ids[4], addrs(t, "/ip4/10.0.0.9/tcp/4455"), t0.Add(5*time.Hour)) {
		t.Fatal("new address not a change")
	}
	// Without addresses the old ones stay.
	b.Seen(ids[3], nil, t0.Add(6*time.Hour))
	if e, _ := b.Get(ids[3]); len(e.Addrs) != 1 {
		t.Fatalf("addresses lost: %v", e.Addrs)
	}
	// Relay addresses are dropped, duplicates merged, at most 16 kept.
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("/ip4/10.1.0.%d/tcp/1", i%20))
	}
	many = append(many, "/ip4/1.2.3.4/tcp/1/p2p/"+ids[0].String()+"/p2p-circuit")
	b.Seen(ids[2], addrs(t, many...), t0.Add(7*time.Hour))
	e, _ := b.Get(ids[2])
	if len(e.Addrs) != maxBookAddrs {
		t.Fatalf("%d addresses kept, want %d", len(e.Addrs), maxBookAddrs)
	}
	for _, a := range e.Addrs {
		if strings.Contains(a.String(), "circuit") {
			t.Fatalf("relay address kept: %s", a)
		}
	}
}

func TestPeerBookSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "peers.json")
	b, err := LoadPeerBook(path, 0)
	if err != nil || b.Len() != 0 {
		t.Fatalf("missing file: %v, %d peers", err, b.Len())
	}
	t0 := time.Unix(1_700_000_000, 0).UTC()
	id1, id2 := testPeerID(t), testPeerID(t)
	b.Seen(id1, addrs(t, "/ip4/192.168.1.7/tcp/4455", "/ip4/192.168.1.7/udp/4455/quic-v1"), t0)
	b.Seen(id2, addrs(t, "/ip6/::1/tcp/4455"), t0.Add(time.Minute))
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	got, err := LoadPeerBook(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	want, gotEs := b.Entries(), got.Entries()
	if len(gotEs) != 2 {
		t.Fatalf("loaded %d peers", len(gotEs))
	}
	for i := range want {
		if want[i].ID != gotEs[i].ID || !want[i].LastSeen.Equal(gotEs[i].LastSeen) || !sameAddrs(want[i].Addrs, gotEs[i].Addrs) {
			t.Fatalf("entry %d: got %+v, want %+v", i, gotEs[i], want[i])
		}
	}
	// Saving again replaces the file atomically.
	b.Remove(id2)
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadPeerBook(path, 0); err != nil || got.Len() != 1 {
		t.Fatalf("after second save: %v, %d peers", err, got.Len())
	}
	// A smaller bound on load keeps the most recent.
	b.Seen(id2, addrs(t, "/ip6/::1/tcp/4455"), t0.Add(time.Hour))
	if err := b.Save(path); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadPeerBook(path, 1); err != nil || got.Len() != 1 {
		t.Fatalf("bounded load: %v, %d", err, got.Len())
	} else if _, ok := got.Get(id2); !ok {
		t.Fatal("bounded load dropped the most recent peer")
	}
}

func TestPeerBookCorrupt(t *testing.T) {
	dir := t.TempDir()
	id := testPeerID(t)
	cases := map[string]string{
		"not json":      "{\"version\":1,\"peers\":[",
		"wrong version": `{"version":7,"peers":[]}`,
		"bad peer id":   `{"version":1,"peers":[{"id":"nope","addrs":[]}]}`,
		"wrong types":   `{"version":"1","peers":{}}`,
		"empty":         ``,
		"huge":          `{"version":1,"peers":[` + strings.Repeat(" ", maxBookFileBytes) + `]}`,
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := LoadPeerBook(path, 0)
			if !errors.Is(err, ErrCorruptPeerBook) {
				t.Fatalf("error %v, want ErrCorruptPeerBook", err)
			}
			if b == nil || b.Len() != 0 {
				t.Fatal("a corrupt book must load empty")
			}
			b.Seen(id, nil, time.Now())
			if err := b.Save(path); err != nil {
				t.Fatalf("the empty book replaces the corrupt file: %v", err)
			}
		})
	}
	// Bad addresses are skipped, not fatal.
	path := filepath.Join(dir, "badaddr")
	content := `{"version":1,"peers":[{"id":"` + id.String() + `","addrs":["garbage","/ip4/10.0.0.1/tcp/1"],"lastSeen":"2026-01-01T00:00:00Z"}]}`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := LoadPeerBook(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := b.Get(id); !ok || len(e.Addrs) != 1 {
		t.Fatalf("entry %+v", e)
	}
	// An unreadable path (a directory) is reported, and the book is empty.
	if b, err := LoadPeerBook(dir, 0); !errors.Is(err, ErrCorruptPeerBook) || b.Len() != 0 {
		t.Fatalf("directory as book: %v", err)
	}
}

func TestPeerBookSkipsPeersWithoutAddrs(t *testing.T) {
	b := NewPeerBook(0)
	id1, id2 := testPeerID(t), testPeerID(t)
	b.Seen(id1, nil, time.Unix(1, 0))
	b.Seen(id2, addrs(t, "/ip4/10.0.0.1/tcp/1"), time.Unix(2, 0))
	data, err := b.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePeerBook(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Get(id1); ok || got.Len() != 1 {
		t.Fatalf("a peer without addresses was saved: %s", data)
	}
}
