package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

const testApp = "com.example.test"

func drafts(t testing.TB, tags []string, values ...any) []event.Draft {
	t.Helper()
	var out []event.Draft
	for _, v := range values {
		out = append(out, event.Draft{Tags: tags, Payload: payload(t, v)})
	}
	return out
}

func countEvents(t testing.TB, n *Store, q string) int {
	t.Helper()
	return len(query(t, n, event.QueryRequest{Query: aql.MustParse(q)}))
}

func TestKVPutGetDeleteRestart(t *testing.T) {
	dir := t.TempDir()
	n := openTest(t, dir)
	ctx := context.Background()
	if _, ok, err := n.KVGet(ctx, "app", "missing"); ok || err != nil {
		t.Fatalf("missing key: %v, %v", ok, err)
	}
	for i, k := range []string{"a", "b", "a\x00b"} {
		if err := n.KVPut(ctx, "app", k, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.KVPut(ctx, "app", "b", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := n.KVDelete(ctx, "app", "a"); err != nil {
		t.Fatal(err)
	}
	// Events and bookkeeping share the writer; neither disturbs the other.
	m := publish(t, n, "x")
	n.Close()

	n = openTest(t, dir)
	for k, want := range map[string]string{"a": "", "b": "new", "a\x00b": "2"} {
		v, ok, err := n.KVGet(ctx, "app", k)
		if err != nil || ok != (want != "") || string(v) != want {
			t.Errorf("after restart, %q = %q, %v, %v; want %q", k, v, ok, err, want)
		}
	}
	if _, ok, _ := n.KVGet(ctx, "other", "b"); ok {
		t.Error("namespaces are not separate")
	}
	if got := publish(t, n, "x"); got.Offset != m.Offset+1 {
		t.Errorf("offset after kv writes %d, want %d", got.Offset, m.Offset+1)
	}
}

func TestKVRejectsBadInput(t *testing.T) {
	n := openTest(t, t.TempDir())
	ctx := context.Background()
	for name, err := range map[string]error{
		"empty namespace":    n.KVPut(ctx, "", "k", nil),
		"NUL in namespace":   n.KVPut(ctx, "a\x00b", "k", nil),
		"reserved namespace": n.KVPut(ctx, nsConsumer, "k", nil),
		"empty key":          n.KVPut(ctx, "app", "", nil),
		"long key":           n.KVPut(ctx, "app", strings.Repeat("k", MaxKVKeyLen+1), nil),
		"delete reserved":    n.KVDelete(ctx, nsIdempotency, "k"),
	} {
		if !errors.Is(err, event.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if err := n.KVPut(ctx, "app", "k", make([]byte, MaxKVValueLen+1)); !errors.Is(err, event.ErrTooLarge) {
		t.Errorf("large value: %v, want ErrTooLarge", err)
	}
	if _, _, err := n.KVGet(ctx, "app", ""); !errors.Is(err, event.ErrInvalid) {
		t.Errorf("get with an empty key: %v", err)
	}
}

func TestIdempotentPublishAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	n := openTest(t, dir)
	ctx := context.Background()
	opts := event.PublishOptions{IdempotencyKey: "order-17"}
	ds := drafts(t, []string{"order"}, 1, 2)
	first, err := n.PublishWith(ctx, testApp, ds, opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := n.PublishWith(ctx, testApp, ds, opts)
	if err != nil || !slices.Equal(first, again) {
		t.Fatalf("retry: %v, %v; want %v", again, err, first)
	}
	// Tag order and duplicates do not change the fingerprint.
	same := drafts(t, []string{"order", "order"}, 1, 2)
	if again, err = n.PublishWith(ctx, testApp, same, opts); err != nil || !slices.Equal(first, again) {
		t.Fatalf("retry with duplicate tags: %v, %v", again, err)
	}
	for name, ds := range map[string][]event.Draft{
		"other payload": drafts(t, []string{"order"}, 1, 3),
		"other tags":    drafts(t, []string{"order", "x"}, 1, 2),
		"fewer events":  drafts(t, []string{"order"}, 1),
	} {
		if _, err := n.PublishWith(ctx, testApp, ds, opts); !errors.Is(err, event.ErrIdempotencyMismatch) {
			t.Errorf("%s under the same key: %v, want ErrIdempotencyMismatch", name, err)
		}
	}
	// Keys are per app.
	other, err := n.PublishWith(ctx, "com.example.other", ds, opts)
	if err != nil || other[0].Offset != first[1].Offset+1 {
		t.Fatalf("same key, other app: %v, %v", other, err)
	}
	n.Close()

	n = openTest(t, dir)
	if again, err = n.PublishWith(ctx, testApp, ds, opts); err != nil || !slices.Equal(first, again) {
		t.Fatalf("after restart: %v, %v; want %v", again, err, first)
	}
	if c := countEvents(t, n, "FROM 'order'"); c != 4 {
		t.Fatalf("%d events stored, want 4", c)
	}
}

func TestIdempotentPublishConcurrentRetries(t *testing.T) {
	n := openTest(t, t.TempDir())
	ctx := context.Background()
	const workers, keys = 16, 4
	results := make([][]event.Meta, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			k := i % keys
			m, err := n.PublishWith(ctx, testApp, drafts(t, []string{"k"}, k), event.PublishOptions{IdempotencyKey: fmt.Sprint("key-", k)})
			if err != nil {
				t.Error(err)
			}
			results[i] = m
		})
	}
	wg.Wait()
	for i := range workers {
		if !slices.Equal(results[i], results[i%keys]) {
			t.Errorf("worker %d got %v, worker %d %v: retries of one key must agree", i, results[i], i%keys, results[i%keys])
		}
	}
	if c := countEvents(t, n, "FROM 'k'"); c != keys {
		t.Fatalf("%d events stored, want %d (one per key)", c, keys)
	}
}

func TestIdempotencyKeyExpires(t *testing.T) {
	n := openTest(t, t.TempDir(), func(c *Config) { c.IdempotencyTTL = time.Second })
	ctx := context.Background()
	opts := event.PublishOptions{IdempotencyKey: "k"}
	first, err := n.PublishWith(ctx, testApp, drafts(t, []string{"t"}, 1), opts)
	if err != nil {
		t.Fatal(err)
	}
	// Badger's TTL has second resolution: poll for up to 5s.
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := n.PublishWith(ctx, testApp, drafts(t, []string{"t"}, 1), opts)
		if err != nil {
			t.Fatal(err)
		}
		if m[0] != first[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the key did not expire within 5s of a 1s TTL")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPublishOptionsRejectBadInput(t *testing.T) {
	n := openTest(t, t.TempDir())
	ctx := context.Background()
	ds := drafts(t, []string{"t"}, 1)
	for name, opts := range map[string]event.PublishOptions{
		"long key":        {IdempotencyKey: strings.Repeat("k", event.MaxIdempotencyKeyLen+1)},
		"NUL in key":      {IdempotencyKey: "a\x00b"},
		"guard, no query": {Guard: &event.Guard{}},
	} {
		if _, err := n.PublishWith(ctx, testApp, ds, opts); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestGuardedPublish(t *testing.T) {
	n := openTest(t, t.TempDir())
	ctx := context.Background()
	q := aql.MustParse("FROM 'order:1'")
	guard := func(after lamport.EventKey) event.PublishOptions {
		return event.PublishOptions{Guard: &event.Guard{Query: q, After: after}}
	}
	m, err := n.PublishWith(ctx, testApp, drafts(t, []string{"order", "order:1"}, "opened"), guard(lamport.EventKey{}))
	if err != nil {
		t.Fatalf("first guarded publish: %v", err)
	}
	since := lamport.EventKey{Lamport: m[0].Lamport, Stream: string(m[0].Stream), Offset: m[0].Offset}
	// The zero key now conflicts: an order:1 event exists.
	if _, err := n.PublishWith(ctx, testApp, drafts(t, []string{"order:1"}, "again"), guard(lamport.EventKey{})); !errors.Is(err, event.ErrConflict) {
		t.Fatalf("zero key with an existing event: %v, want ErrConflict", err)
	}
	publish(t, n, "order:2") // unrelated
	m2, err := n.PublishWith(ctx, testApp, drafts(t, []string{"order:1"}, "assigned"), guard(since))
	if err != nil {
		t.Fatalf("guard with the latest key: %v", err)
	}
	_, err = n.PublishWith(ctx, testApp, drafts(t, []string{"order:1"}, "stale"), guard(since))
	var ce *event.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, event.ErrConflict) {
		t.Fatalf("stale guard: %v, want *ConflictError", err)
	}
	if len(ce.Changed) != 1 || ce.Changed[0].Offset != m2[0].Offset || ce.More {
		t.Fatalf("Changed = %+v (more %v), want the event at %d", ce.Changed, ce.More, m2[0].Offset)
	}
	if c := countEvents(t, n, "FROM 'order:1'"); c != 2 {
		t.Fatalf("%d order:1 events, want 2 (the failed publishes wrote nothing)", c)
	}

	// Many conflicting events: the newest are listed, in ascending order.
	for range event.MaxConflictEvents + 3 {
		publish(t, n, "order:1")
	}
	_, err = n.PublishWith(ctx, testApp, drafts(t, []string{"order:1"}, "stale"), guard(since))
	if !errors.As(err, &ce) || len(ce.Changed) != event.MaxConflictEvents || !ce.More {
		t.Fatalf("many conflicts: %v", err)
	}
	if !slices.IsSortedFunc(ce.Changed, func(a, b event.Event) int { return lamport.Compare(a.Key(), b.Key()) }) {
		t.Fatal("Changed is not in ascending order")
	}

	// Replicated events count too: the node knows them.
	foreign := event.NewStreamID("12D3KooWForeign", 0)
	last := publish(t, n, "order:3")
	since3 := lamport.EventKey{Lamport: last.Lamport, Stream: string(last.Stream), Offset: last.Offset}
	putForeign(t, n, foreign, []event.Event{{Lamport: last.Lamport + 5, Stream: foreign, Offset: 0, Tags: []string{"order:3"}, AppID: "x", Payload: payload(t, 1)}})
	q3 := event.PublishOptions{Guard: &event.Guard{Query: aql.MustParse("FROM 'order:3'"), After: since3}}
	if _, err := n.PublishWith(ctx, testApp, drafts(t, []string{"order:3"}, 1), q3); !errors.As(err, &ce) || ce.Changed[0].Stream != foreign {
		t.Fatalf("replicated newer event: %v, want a conflict naming it", err)
	}
	// isLocal restricts the guard to the node's own streams.
	q3.Guard.Query = aql.MustParse("FROM 'order:3' & isLocal")
	if _, err := n.PublishWith(ctx, testApp, drafts(t, []string{"order:3"}, 1), q3); err != nil {
		t.Fatalf("isLocal guard: %v", err)
	}
}

// TestGuardedPublishRace: guarded publishes from the same state race;
// exactly one wins, whatever batches the writer forms.
func TestGuardedPublishRace(t *testing.T) {
	n := openTest(t, t.TempDir())
	ctx := context.Background()
	opts := event.PublishOptions{Guard: &event.Guard{Query: aql.MustParse("FROM 'seat:12A'")}}
	const racers = 12
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			_, errs[i] = n.PublishWith(ctx, testApp, drafts(t, []string{"seat:12A"}, i), opts)
		})
		// Unguarded traffic in the same batches.
		wg.Go(func() { publish(t, n, "noise") })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, event.ErrConflict):
			t.Error(err)
		}
	}
	if wins != 1 || countEvents(t, n, "FROM 'seat:12A'") != 1 {
		t.Fatalf("%d wins, %d events; want exactly 1", wins, countEvents(t, n, "FROM 'seat:12A'"))
	}
}

// TestIdempotentGuardedRetry: the retry of a guarded publish that went
// through returns its metas, although its own events now fail the guard.
func TestIdempotentGuardedRetry(t *testing.T) {
	n := openTest(t, t.TempDir())
	ctx := context.Background()
	opts := event.PublishOptions{IdempotencyKey: "complete-1", Guard: &event.Guard{Query: aql.MustParse("FROM 'wo:1'")}}
	ds := drafts(t, []string{"wo:1"}, "done")
	first, err := n.PublishWith(ctx, testApp, ds, opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := n.PublishWith(ctx, testApp, ds, opts)
	if err != nil || !slices.Equal(first, again) {
		t.Fatalf("retry: %v, %v; want %v", again, err, first)
	}
	// A failed guard records no key: a retry after the conflict is checked
	// again (and conflicts again).
	opts.IdempotencyKey = "complete-2"
	for range 2 {
		if _, err := n.PublishWith(ctx, testApp, ds, opts); !errors.Is(err, event.ErrConflict) {
			t.Fatalf("conflicting publish: %v", err)
		}
	}
	if _, ok, _ := n.kvGet(ctx, kvKey(nsIdempotency, testApp+"\x00complete-2")); ok {
		t.Fatal("a failed guarded publish recorded its idempotency key")
	}
}

func TestConsumerStatusInInfo(t *testing.T) {
	dir := t.TempDir()
	n := openTest(t, dir)
	ctx := context.Background()
	stream := event.NewStreamID("12D3KooWA", 0)
	st := event.ConsumerStatus{
		Name:       "mailer",
		Checkpoint: event.OffsetMap{stream: 41},
		Blocked:    []event.BlockedStream{{Stream: stream, Event: lamport.EventKey{Lamport: 9, Stream: string(stream), Offset: 42}, Attempts: 5, Error: "smtp down"}},
		Running:    true,
	}
	if err := n.PutConsumer(ctx, testApp, st); err != nil {
		t.Fatal(err)
	}
	if err := n.PutConsumer(ctx, "com.example.a", event.ConsumerStatus{Name: "mailer"}); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]event.ConsumerStatus{
		"no name":        {},
		"bad checkpoint": {Name: "x", Checkpoint: event.OffsetMap{"nope": 1}},
		"bad blocked":    {Name: "x", Blocked: []event.BlockedStream{{Stream: "nope"}}},
	} {
		if err := n.PutConsumer(ctx, testApp, bad); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	n.Close()
	n = openTest(t, dir)
	got, ok, err := n.Consumer(ctx, testApp, "mailer")
	if err != nil || !ok {
		t.Fatalf("Consumer: %v, %v", ok, err)
	}
	if got.AppID != testApp || got.Checkpoint[stream] != 41 || len(got.Blocked) != 1 || got.Blocked[0] != st.Blocked[0] || !got.Running || got.Updated.IsZero() {
		t.Fatalf("Consumer = %+v", got)
	}
	all, err := n.Consumers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].AppID != "com.example.a" || all[1].AppID != testApp {
		t.Fatalf("Consumers = %+v, want both, ordered by app", all)
	}
	if _, ok, _ := n.Consumer(ctx, testApp, "other"); ok {
		t.Fatal("unknown consumer found")
	}
}
