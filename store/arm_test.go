package store

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
)

// manyEvents is how many events TestManyEventsSurviveRestart writes:
// EDGELOG_ARM_EVENTS if set (scripts/test-arm.sh sets 1000000), else 100000,
// or 20000 with -short or the race detector.
func manyEvents(t *testing.T) int {
	if s := os.Getenv("EDGELOG_ARM_EVENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("EDGELOG_ARM_EVENTS=%q: want a positive integer", s)
		}
		return n
	}
	if testing.Short() || raceEnabled {
		return 20000
	}
	return 100000
}

// armPayload is the payload of the i-th event: distinct per event, so a
// record served from a reused buffer shows up as a wrong payload.
func armPayload(t testing.TB, i int) []byte {
	return payload(t, []any{i, "reading", i * 7})
}

// TestManyEventsSurviveRestart writes many events through the node with tiny
// memtables (so they flush to tables many times), restarts the node and reads
// every event back, checking offsets, tags and payloads. On 32-bit targets
// (GOARCH=arm, 386) it catches ristretto's z.Allocator overflow, which loses
// most events once memtables are flushed unless ristretto is patched
// (third_party/PATCHES.md).
func TestManyEventsSurviveRestart(t *testing.T) {
	total := manyEvents(t)
	dir := t.TempDir()
	cfg := func(c *Config) {
		c.Storage = Storage{MemTableSize: 2 << 20, BlockCacheSize: 1 << 20, NumCompactors: 2, MinFreeBytes: 1}
	}
	t.Logf("writing %d events on %s/%s", total, runtime.GOOS, runtime.GOARCH)
	n := openTest(t, dir, cfg)
	ctx := context.Background()
	const batch = 500
	drafts := make([]event.Draft, 0, batch)
	for i := 0; i < total; {
		drafts = drafts[:0]
		for j := 0; j < batch && i+j < total; j++ {
			drafts = append(drafts, event.Draft{Tags: []string{"arm", "m:" + strconv.Itoa((i+j)%16)}, Payload: armPayload(t, i+j)})
		}
		metas, err := n.Publish(ctx, "com.example.arm", drafts)
		if err != nil {
			t.Fatalf("publish at event %d: %v", i, err)
		}
		if metas[0].Offset != uint64(i) {
			t.Fatalf("publish at event %d got offset %d", i, metas[0].Offset)
		}
		i += len(drafts)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	n = openTest(t, dir, cfg)
	offs, err := n.Offsets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := offs.Present[n.DefaultStream()]; !ok || got != uint64(total-1) {
		t.Errorf("after restart the present offset is %d (known %v), want %d", got, ok, total-1)
	}
	checkAll := func(q string, want func(i int) bool) {
		t.Helper()
		i, got, bad := 0, 0, 0
		advance := func() {
			for i < total && !want(i) {
				i++
			}
		}
		advance()
		for it, err := range n.Query(ctx, event.QueryRequest{Query: aql.MustParse(q)}) {
			if err != nil {
				t.Fatalf("%s: after %d events: %v", q, got, err)
			}
			if it.Kind != event.KindEvent {
				continue
			}
			got++
			e := it.Event
			if i >= total {
				if bad++; bad <= 5 {
					t.Errorf("%s: unexpected event at offset %d", q, e.Offset)
				}
				continue
			}
			exp := armPayload(t, i)
			if e.Offset != uint64(i) || !bytes.Equal(e.Payload, exp) || !e.HasTag("arm") || !e.HasTag("m:"+strconv.Itoa(i%16)) {
				if bad++; bad <= 5 {
					t.Errorf("%s: event %d is wrong: offset %d, tags %v, payload %x, want %x", q, i, e.Offset, e.Tags, e.Payload, exp)
				}
			}
			i++
			advance()
		}
		wantN := 0
		for j := range total {
			if want(j) {
				wantN++
			}
		}
		if bad > 0 || got != wantN {
			t.Fatalf("%s: read %d events after restart, want %d; %d wrong", q, got, wantN, bad)
		}
	}
	checkAll("FROM allEvents", func(int) bool { return true })
	// Read one tag through the tag index too: its postings, then the
	// events' blocks one by one.
	checkAll("FROM 'm:3'", func(i int) bool { return i%16 == 3 })
	t.Logf("all %d events read back after restart on %s", total, runtime.GOARCH)
}
