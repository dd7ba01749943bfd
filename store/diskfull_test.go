//go:build linux

package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
)

// TestRealDiskFull fills a small tmpfs until the node refuses, then checks
// that it keeps serving and that every acknowledged event survives a
// restart. It needs root to mount the tmpfs.
func TestRealDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=192m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	cfg := func(c *Config) {
		c.Durability = DurabilitySync
		c.Storage = Storage{MemTableSize: 2 << 20, BlockCacheSize: 1 << 20}
	}
	n := openTest(t, dir, cfg)
	raw := make([]byte, 4000) // random: neither zstd nor Badger can shrink it
	rand.NewChaCha8([32]byte{1}).Read(raw)
	big := payload(t, raw)
	acked, refused := 0, 0
	// Keep pushing after the first refusal: compactions go on in the
	// background and may free room; every attempt must either succeed or be
	// refused cleanly, never crash the process.
	for i := 0; i < 100000 && refused < 300; i++ {
		_, err := n.Publish(context.Background(), "com.example.fill", []event.Draft{{Tags: []string{"fill"}, Payload: big}})
		switch {
		case err == nil:
			acked++
		case errors.Is(err, event.ErrStorageFull):
			refused++
		default:
			t.Fatalf("after %d events: err = %v, want ErrStorageFull", acked, err)
		}
	}
	if refused == 0 {
		t.Fatalf("%d events written and never refused", acked)
	}
	if acked == 0 {
		t.Fatal("nothing could be written")
	}
	if got := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'fill'")}); len(got) != acked {
		t.Fatalf("full node serves %d events, acknowledged %d", len(got), acked)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("close on a full disk: %v", err)
	}
	n = openTest(t, dir, cfg)
	got := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'fill'")})
	if len(got) != acked {
		t.Fatalf("after restart %d events, acknowledged %d", len(got), acked)
	}
	for i, e := range got {
		if e.Offset != uint64(i) || string(e.Payload) != string(big) {
			t.Fatalf("event %d damaged", i)
		}
	}
}
