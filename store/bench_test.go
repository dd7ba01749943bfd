package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/internal/eventtest"
)

// The benchmarks report events/s; scripts/bench.sh turns them into ratios
// against the raw Badger baselines measured in the same run. Payloads are
// 100 bytes, as in the targets.

func benchPayload(b *testing.B) []byte { return benchPayloadN(b, 1) }

// benchPayloadN is eventtest.Telemetry.
func benchPayloadN(b *testing.B, i int) []byte { return eventtest.Telemetry(b, i) }

// openRawBadger opens a Badger database for a baseline with the memtable
// and block cache sizes of st, unresolved fields taking those the node's
// profile chooses on this machine, so that the baseline stores with what
// the node it is compared to stores with.
func openRawBadger(b *testing.B, sync bool, st Storage) *badger.DB {
	st, err := st.resolve(DetectHost())
	if err != nil {
		b.Fatal(err)
	}
	db, err := badger.Open(badger.DefaultOptions(b.TempDir()).WithLogger(nil).WithSyncWrites(sync).
		WithDetectConflicts(false).WithMemTableSize(st.MemTableSize).WithBlockCacheSize(st.BlockCacheSize).WithMetricsEnabled(false))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func reportRate(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRawBadgerBatch1000Sync: transactions of 1000 100-byte values
// with SyncWrites, the baseline for BenchmarkPublishBatch1000Sync.
func BenchmarkRawBadgerBatch1000Sync(b *testing.B) {
	db := openRawBadger(b, true, Storage{})
	val := benchPayload(b)
	var seq uint64
	events := 0
	for b.Loop() {
		txn := db.NewTransaction(true)
		for range 1000 {
			seq++
			if err := txn.Set(binary.BigEndian.AppendUint64([]byte("k"), seq), val); err != nil {
				b.Fatal(err)
			}
		}
		if err := txn.Commit(); err != nil {
			b.Fatal(err)
		}
		events += 1000
	}
	reportRate(b, events)
}

func BenchmarkPublishBatch1000Sync(b *testing.B) {
	n := openTest(b, b.TempDir(), func(c *Config) { c.Durability = DurabilitySync; c.Storage = Storage{} })
	drafts := make([]event.Draft, 1000)
	for i := range drafts {
		drafts[i] = event.Draft{Tags: []string{"bench", "machine:7"}, Payload: benchPayload(b)}
	}
	events := 0
	for b.Loop() {
		if _, err := n.Publish(context.Background(), "com.example.bench", drafts); err != nil {
			b.Fatal(err)
		}
		events += len(drafts)
	}
	reportRate(b, events)
}

// BenchmarkRawBadgerOneFsyncPerEvent: one transaction and fsync per event,
// the baseline group commit must beat by 20x.
func BenchmarkRawBadgerOneFsyncPerEvent(b *testing.B) {
	db := openRawBadger(b, true, Storage{})
	val := benchPayload(b)
	var seq uint64
	events := 0
	for b.Loop() {
		seq++
		if err := db.Update(func(txn *badger.Txn) error {
			return txn.Set(binary.BigEndian.AppendUint64([]byte("k"), seq), val)
		}); err != nil {
			b.Fatal(err)
		}
		events++
	}
	reportRate(b, events)
}

// BenchmarkPublishConcurrent64Sync: 64 publishers of one event each.
func BenchmarkPublishConcurrent64Sync(b *testing.B) {
	n := openTest(b, b.TempDir(), func(c *Config) { c.Durability = DurabilitySync; c.Storage = Storage{} })
	val := benchPayload(b)
	const publishers = 64
	var events atomic.Int64
	for b.Loop() {
		// Each iteration: 64 publishers, 64 events each, concurrently.
		var wg sync.WaitGroup
		for range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 64 {
					if _, err := n.Publish(context.Background(), "com.example.bench", []event.Draft{{Tags: []string{"bench"}, Payload: val}}); err != nil {
						b.Error(err)
						return
					}
					events.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	reportRate(b, int(events.Load()))
}

// benchStore is a 1M-event store shared by the read benchmarks.
var benchStore struct {
	once sync.Once
	dir  string
	size int64
}

const benchStoreEvents = 1_000_000

func fillBenchStore(b *testing.B) string {
	benchStore.once.Do(func() {
		dir, err := os.MkdirTemp("", "edgelog-bench-")
		if err != nil {
			b.Fatal(err)
		}
		n, err := openKeyed(Config{DataDir: dir, Durability: DurabilityAsync})
		if err != nil {
			b.Fatal(err)
		}
		drafts := make([]event.Draft, 1000)
		for i := 0; i < benchStoreEvents; i += len(drafts) {
			for j := range drafts {
				tags := []string{"bench", fmt.Sprintf("machine:%d", (i+j)%100)}
				drafts[j] = event.Draft{Tags: tags, Payload: benchPayloadN(b, i+j)}
			}
			if _, err := n.Publish(context.Background(), "com.example.bench", drafts); err != nil {
				b.Fatal(err)
			}
		}
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
		benchStore.dir = dir
		filepath.Walk(filepath.Join(dir, "db"), func(_ string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				benchStore.size += info.Size()
			}
			return nil
		})
	})
	if benchStore.dir == "" {
		b.Skip("bench store could not be built")
	}
	return benchStore.dir
}

// BenchmarkQueryTag1M streams every event of a tag from a 1M-event store,
// decoded into Events. It also reports the store's disk bytes per event.
func BenchmarkQueryTag1M(b *testing.B) {
	dir := fillBenchStore(b)
	n := openTest(b, dir, func(c *Config) { c.Storage = Storage{} })
	q := aql.MustParse("FROM 'bench'")
	events := 0
	for b.Loop() {
		got := 0
		for it, err := range n.Query(context.Background(), event.QueryRequest{Query: q}) {
			if err != nil {
				b.Fatal(err)
			}
			if it.Kind == event.KindEvent {
				got++
			}
		}
		if got != benchStoreEvents {
			b.Fatalf("query returned %d events", got)
		}
		events += got
	}
	reportRate(b, events)
	b.ReportMetric(float64(benchStore.size)/benchStoreEvents, "disk-bytes/event")
}

// BenchmarkQuerySelectiveTag1M reads one machine's events (1%) through the
// tag index.
func BenchmarkQuerySelectiveTag1M(b *testing.B) {
	dir := fillBenchStore(b)
	n := openTest(b, dir, func(c *Config) { c.Storage = Storage{} })
	q := aql.MustParse("FROM 'machine:42'")
	events := 0
	for b.Loop() {
		for it, err := range n.Query(context.Background(), event.QueryRequest{Query: q}) {
			if err != nil {
				b.Fatal(err)
			}
			if it.Kind == event.KindEvent {
				events++
			}
		}
	}
	reportRate(b, events)
}

// BenchmarkRawBadgerScan1M iterates 1M raw 100-byte values, copying each: the
// baseline for the query benchmarks.
func BenchmarkRawBadgerScan1M(b *testing.B) {
	db := openRawBadger(b, false, Storage{})
	val := benchPayload(b)
	for i := 0; i < benchStoreEvents; i += 1000 {
		txn := db.NewTransaction(true)
		for j := range 1000 {
			if err := txn.Set(binary.BigEndian.AppendUint64([]byte("k"), uint64(i+j)), val); err != nil {
				b.Fatal(err)
			}
		}
		if err := txn.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	events := 0
	for b.Loop() {
		err := db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				_ = v
				events++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, events)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchStore.dir != "" {
		os.RemoveAll(benchStore.dir)
	}
	os.Exit(code)
}
