//go:build linux

package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
)

// mountTmpfs mounts a tmpfs of size (mount's syntax, e.g. 96m) on a
// directory it returns, unmounted when the test ends; it skips the test
// where that is not possible (it needs root).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestRealDiskFull fills a small tmpfs until the node refuses, then checks
// that it keeps serving and that every acknowledged event survives a
// restart. It needs root to mount the tmpfs.
func TestRealDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "192m")
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

// fullDiskChild is the environment variable that makes the test binary a
// child of TestOpenOnFullDisk: "crash" publishes and exits without closing
// (its memtable log stays, to be replayed), "open" opens the store once;
// or of TestCompactOnFullDisk: "compact" (see there).
const fullDiskChild = "EDGELOG_TEST_FULL_DISK_CHILD"

// TestFullDiskChild is the child's body; it does nothing in a normal run.
func TestFullDiskChild(t *testing.T) {
	mode, dir := os.Getenv(fullDiskChild), os.Getenv(fullDiskChild+"_DIR")
	if mode == "" {
		t.Skip("run by TestOpenOnFullDisk")
	}
	// An explicit cap: 32-bit builds otherwise cap the database below what
	// the memtable files count for.
	cfg := Config{DataDir: dir, Durability: DurabilitySync, Storage: Storage{MemTableSize: 2 << 20, BlockCacheSize: 1 << 20, MinFreeBytes: 1, MaxDBBytes: 64 << 20}, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	n, err := openKeyed(cfg)
	switch {
	case errors.Is(err, event.ErrStorageFull):
		fmt.Printf("refused: %v\n", err)
		os.Exit(3)
	case err != nil:
		fmt.Printf("open: %v\n", err)
		os.Exit(4)
	}
	if mode == "compact" {
		compactChild(t, n)
	}
	if mode == "crash" {
		for i := range 500 {
			if _, err := n.Publish(context.Background(), "com.example.full", []event.Draft{{Tags: []string{"full"}, Payload: payload(t, fmt.Sprintf("event %d", i))}}); err != nil {
				fmt.Printf("publish %d: %v\n", i, err)
				os.Exit(5)
			}
		}
		os.Exit(0) // no Close: the memtable log stays for the next open
	}
	got := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'full'")})
	_, perr := n.Publish(context.Background(), "com.example.full", []event.Draft{{Tags: []string{"full"}, Payload: payload(t, "more")}})
	fmt.Printf("opened: %d events; publish: %v; full: %v\n", len(got), perr, errors.Is(perr, event.ErrStorageFull))
	if err := n.Close(); err != nil {
		fmt.Printf("close: %v\n", err)
		os.Exit(4)
	}
	os.Exit(0)
}

// TestOpenOnFullDisk: a node that stopped without closing (its memtable
// log not yet in tables), restarted on a disk another process filled to 0
// bytes free, opens read-only instead of dying of SIGBUS while Badger
// replays its log: it serves every acknowledged event and refuses
// publishes with ErrStorageFull saying why; so again after a clean stop.
// A node with no database yet refuses to start there, with one message.
// Once space is freed it opens for writing with every event.
func TestOpenOnFullDisk(t *testing.T) {
	skipUnderQemu(t)
	dir := mountTmpfs(t, "96m")
	data := filepath.Join(dir, "node")
	child := func(mode string, dirs ...string) (int, string) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFullDiskChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), fullDiskChild+"="+mode, fullDiskChild+"_DIR="+append(dirs, data)[0])
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			code = ee.ExitCode()
		} else if errors.Is(err, syscall.ENOEXEC) {
			t.Skipf("cannot run the test binary as a child here (under qemu-user without binfmt): %v", err)
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	if code, out := child("crash"); code != 0 {
		t.Fatalf("writer: exit %d: %s", code, out)
	}
	mems, _ := filepath.Glob(filepath.Join(data, "db", "*.mem"))
	if len(mems) == 0 {
		t.Fatal("the writer left no memtable log to replay")
	}
	// Another process takes every byte left.
	fill := filepath.Join(dir, "fill")
	if out, err := exec.Command("dd", "if=/dev/zero", "of="+fill, "bs=1M").CombinedOutput(); err == nil {
		t.Fatalf("dd filled nothing up: %s", out)
	}
	// It opens read-only, serves every event and refuses writes, twice:
	// after the crash (its memtable log replayed in memory) and after the
	// clean stop of that read-only run.
	for range 2 {
		code, out := child("open")
		if code != 0 || !strings.Contains(out, "opened: 500 events; publish: ") || !strings.Contains(out, "read-only") || !strings.Contains(out, "full: true") {
			t.Fatalf("open on a full disk: exit %d, want 0, 500 events served and the publish refused as read-only:\n%s", code, out)
		}
		if i := strings.Index(out, "opened: "); i >= 0 {
			t.Logf("full disk: %s", strings.TrimSpace(out[i:]))
		}
	}
	// A node without a database yet cannot start there: one clear message.
	if code, out := child("open", filepath.Join(dir, "fresh")); code != 3 || !strings.Contains(out, "free space and start again") {
		t.Fatalf("a new node on a full disk: exit %d, want 3 (ErrStorageFull):\n%s", code, out)
	}
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	n := openTest(t, data, func(c *Config) { c.Storage.MemTableSize, c.Storage.MaxDBBytes = 2<<20, 64<<20 })
	if got := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'full'")}); len(got) != 500 {
		t.Fatalf("after freeing space: %d events, 500 acknowledged", len(got))
	}
	if m := publish(t, n, "full"); m.Offset != 500 {
		t.Fatalf("the first publish after freeing space went to offset %d, want 500", m.Offset)
	}
}

// compactChild is TestCompactOnFullDisk's child: it publishes 3000 events
// of 4 KiB (random, so nothing shrinks them) and says "published", waits
// for a line on stdin (the disk is full then), compacts, publishes once
// more, closes and exits 0, printing each outcome.
func compactChild(t *testing.T, n *Store) {
	raw := make([]byte, 4000)
	rng := rand.NewChaCha8([32]byte{2})
	for i := range 3000 {
		rng.Read(raw)
		if _, err := n.Publish(context.Background(), "com.example.full", []event.Draft{{Tags: []string{"full"}, Payload: payload(t, raw)}}); err != nil {
			fmt.Printf("publish %d: %v\n", i, err)
			os.Exit(5)
		}
	}
	fmt.Println("published")
	if _, err := fmt.Scanln(); err != nil {
		fmt.Printf("stdin: %v\n", err)
		os.Exit(6)
	}
	for range 3 {
		fmt.Printf("compact: %v\n", n.Compact(context.Background()))
	}
	_, err := n.Publish(context.Background(), "com.example.full", []event.Draft{{Tags: []string{"full"}, Payload: payload(t, raw)}})
	fmt.Printf("publish on the full disk: %v\n", err)
	fmt.Printf("close: %v\n", n.Close())
	os.Exit(0)
}

// TestCompactOnFullDisk: a running node whose disk another process fills
// to 0 bytes free goes on compacting, as Badger does in the background, and
// neither that nor closing kills it: the files Badger creates are allocated
// when they are made (third_party/ristretto/PATCHES.md), so a full disk is
// an error Badger reports and retries, not a SIGBUS at the first write into
// a sparse mapping. Once space is freed every acknowledged event is there.
func TestCompactOnFullDisk(t *testing.T) {
	skipUnderQemu(t)
	dir := mountTmpfs(t, "96m")
	data := filepath.Join(dir, "node")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFullDiskChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fullDiskChild+"=compact", fullDiskChild+"_DIR="+data)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	var out strings.Builder
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	startChild(t, cmd)
	published := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		signalled := false
		for {
			k, err := stdout.Read(buf)
			out.Write(buf[:k])
			if !signalled && strings.Contains(out.String(), "published\n") {
				signalled = true
				close(published)
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-published:
	case <-done:
		t.Fatalf("the child ended before publishing: %v\n%s", cmd.Wait(), out.String())
	}
	fill := filepath.Join(dir, "fill")
	if o, err := exec.Command("dd", "if=/dev/zero", "of="+fill, "bs=1M").CombinedOutput(); err == nil {
		t.Fatalf("dd filled nothing up: %s", o)
	}
	fmt.Fprintln(stdin)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Signal(syscall.SIGQUIT)
		<-done
		cmd.Wait()
		t.Fatalf("the child hangs on the full disk:\n%s\n%s", out.String(), stderr.String()[:min(stderr.Len(), 20000)])
	}
	err = cmd.Wait()
	t.Logf("child on the full disk:\n%s", out.String())
	if err != nil {
		t.Fatalf("the child died on the full disk: %v\n%s", err, stderr.String()[:min(stderr.Len(), 3000)])
	}
	if !strings.Contains(out.String(), "publish on the full disk: publish: storage full") {
		t.Errorf("a publish on the full disk was not refused with ErrStorageFull")
	}
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	n := openTest(t, data, func(c *Config) { c.Storage.MemTableSize, c.Storage.MaxDBBytes = 2<<20, 64<<20 })
	if got := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'full'")}); len(got) != 3000 {
		t.Fatalf("after freeing space: %d events, 3000 acknowledged", len(got))
	}
}
