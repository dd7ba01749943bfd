package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/internal/memtrim"
)

// TestTrimmerKeepsEvents publishes and reads while the trimmer hands back
// the database's mapped pages every few milliseconds, through many
// memtable flushes and compactions, and checks every event, before and
// after a restart.
func TestTrimmerKeepsEvents(t *testing.T) {
	dir := t.TempDir()
	trim := func(c *Config) {
		c.Storage.MemTableSize = 1 << 20
		c.Storage.TrimInterval = 2 * time.Millisecond
	}
	const total, per = 20_000, 250
	body := func(i int) []byte { return payload(t, fmt.Sprintf("event %d %0150d", i, i)) }
	check := func(n *Store) {
		t.Helper()
		evs := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'trim'")})
		if len(evs) != total {
			t.Fatalf("read %d events, want %d", len(evs), total)
		}
		for i, e := range evs {
			if !bytes.Equal(e.Payload, body(i)) {
				t.Fatalf("event %d: payload %q", i, e.Payload)
			}
		}
	}

	n := openTest(t, dir, trim)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reads := make(chan error, 1)
	go func() { // a reader faulting pages back in meanwhile
		var err error
		for ctx.Err() == nil && err == nil {
			_, _, err = collect(t, n.Query(ctx, event.QueryRequest{Query: aql.MustParse("FROM 'trim'")}))
		}
		if ctx.Err() != nil {
			err = nil
		}
		reads <- err
	}()
	for i := 0; i < total; i += per {
		drafts := make([]event.Draft, per)
		for j := range drafts {
			drafts[j] = event.Draft{Tags: []string{"trim"}, Payload: body(i + j)}
		}
		if _, err := n.Publish(context.Background(), "com.example.trim", drafts); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-reads; err != nil {
		t.Fatalf("reading while trimming: %v", err)
	}
	check(n)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	check(openTest(t, dir, trim))
}

// TestTrimSelectorFindsBadgerFiles checks that the trimmer's selector
// names what this process really maps, among the mappings the trimmer
// advises: Badger's files under the data directory (PageOut) and the
// executable's code (DontNeed). A wrong path would make the trimmer
// silently trim nothing.
func TestTrimSelectorFindsBadgerFiles(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/smaps")
	}
	dir := t.TempDir()
	n := openTest(t, dir)
	publish(t, n, "trim")
	maps, err := memtrim.Mappings()
	if errors.Is(err, memtrim.ErrUnconfirmed) {
		t.Skipf("the trimmer trims nothing here: %v", err) // qemu-user
	}
	if err != nil {
		t.Fatal(err)
	}
	sel := trimSelector(dir)
	got := map[memtrim.Advice]int{}
	for _, m := range maps {
		got[sel.Select(m)]++
	}
	if got[memtrim.PageOut] == 0 || got[memtrim.DontNeed] == 0 {
		t.Fatalf("selected %d database mappings and %d of the executable; want both", got[memtrim.PageOut], got[memtrim.DontNeed])
	}
}
