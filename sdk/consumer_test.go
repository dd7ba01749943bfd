package sdk_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/sdk"
	"github.com/edgelog/edgelog/sdk/sdktest"
)

// recorder is a handler that records what it handled per stream and fails
// while told to.
type recorder struct {
	mu       sync.Mutex
	handled  map[sdk.StreamID][]int
	attempts map[int]int
	failing  map[int]bool // tick numbers that fail
	sleeps   []time.Duration
}

func newRecorder() *recorder {
	return &recorder{handled: map[sdk.StreamID][]int{}, attempts: map[int]int{}, failing: map[int]bool{}}
}

func (r *recorder) handle(_ context.Context, ev sdk.Event) error {
	var v tick
	if err := ev.Decode(&v); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[v.N]++
	if r.failing[v.N] {
		return errors.New("boom")
	}
	r.handled[ev.Stream] = append(r.handled[ev.Stream], v.N)
	return nil
}

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.sleeps = append(r.sleeps, d)
	r.mu.Unlock()
	return ctx.Err()
}

func (r *recorder) get(s sdk.StreamID) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.handled[s])
}

func (r *recorder) setFailing(n int, f bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failing[n] = f
}

func inject(t *testing.T, log *sdktest.MemLog, stream sdk.StreamID, lamport, offset uint64, n int) {
	t.Helper()
	p, err := eventPayload(tick{n})
	if err != nil {
		t.Fatal(err)
	}
	log.Inject(sdk.Event{Meta: sdk.Meta{Lamport: lamport, Stream: stream, Offset: offset}, Tags: []string{"tick"}, Payload: p})
}

func TestConsumerRetryBlockRelease(t *testing.T) {
	const a, b = sdk.StreamID("12D3KooWA-0"), sdk.StreamID("12D3KooWB-0")
	log := sdktest.NewMemLog("12D3KooWA")
	kv := sdk.NewMemKV()
	rec := newRecorder()
	rec.setFailing(1, true)
	for i := range 3 {
		inject(t, log, a, uint64(10+i), uint64(i), i)     // a: 0 1 2
		inject(t, log, b, uint64(10+i), uint64(i), 100+i) // b: 100 101 102
	}
	ctx, cancel := context.WithCancel(sdktest.Context(t))
	defer cancel()
	c, err := sdk.Consume(ctx, log, "c1", sdk.Where(sdk.Tag("tick")), rec.handle,
		sdk.CheckpointKV(kv), sdk.Backoff(time.Millisecond, 3*time.Millisecond), sdk.MaxAttempts(4), sdk.WithSleep(rec.sleep))
	if err != nil {
		t.Fatal(err)
	}
	// b goes on while a is stuck at 1.
	sdktest.Eventually(t, "stream b handled", func() bool { return len(rec.get(b)) == 3 })
	sdktest.Eventually(t, "stream a blocked", func() bool { return len(c.Blocked()) == 1 })
	bl := c.Blocked()[0]
	if bl.Stream != a || bl.Event.Offset != 1 || bl.Attempts != 4 || bl.Err == nil {
		t.Fatalf("Blocked = %+v", bl)
	}
	if got := rec.get(a); !slices.Equal(got, []int{0}) {
		t.Fatalf("a handled %v, want [0]", got)
	}
	rec.mu.Lock()
	sleeps := slices.Clone(rec.sleeps)
	rec.mu.Unlock()
	if want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}; !slices.Equal(sleeps, want) {
		t.Fatalf("backoffs %v, want %v", sleeps, want)
	}
	inject(t, log, b, 20, 3, 103)
	sdktest.Eventually(t, "live event on b", func() bool { return len(rec.get(b)) == 4 })

	rec.setFailing(1, false)
	if !c.Release(a) || c.Release(b) {
		t.Fatal("Release reported wrong blocked state")
	}
	sdktest.Eventually(t, "stream a handled", func() bool { return len(rec.get(a)) == 3 })
	if got := rec.get(a); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("a handled %v, want in order [0 1 2]", got)
	}
	if len(c.Blocked()) != 0 {
		t.Fatalf("still blocked: %+v", c.Blocked())
	}
	cancel()
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	if cp := c.Checkpoint(); cp[a] != 2 || cp[b] != 3 {
		t.Fatalf("checkpoint %v", cp)
	}
}

func TestConsumerResumesFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	e, err := sdk.Open(dir, sdk.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { e.Close() }()
	publishTicks(t, e, 0, 1, 2)
	rec := newRecorder()
	ctx, cancel := context.WithCancel(sdktest.Context(t))
	c, err := sdk.Consume(ctx, e, "mailer", sdk.Where(sdk.Tag("tick")), rec.handle)
	if err != nil {
		t.Fatal(err)
	}
	stream := publishTicks(t, e, 3).Stream
	sdktest.Eventually(t, "4 events handled", func() bool { return len(rec.get(stream)) == 4 })
	cancel()
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	// Restart the node and the consumer: it continues after its checkpoint.
	e.Close()
	if e, err = sdk.Open(dir, sdk.WithLogger(quiet)); err != nil {
		t.Fatal(err)
	}
	publishTicks(t, e, 4, 5)
	rec2 := newRecorder()
	ctx, cancel = context.WithCancel(sdktest.Context(t))
	defer cancel()
	c, err = sdk.Consume(ctx, e, "mailer", sdk.Where(sdk.Tag("tick")), rec2.handle)
	if err != nil {
		t.Fatal(err)
	}
	sdktest.Eventually(t, "2 events handled", func() bool { return len(rec2.get(stream)) >= 2 })
	if got := rec2.get(stream); !slices.Equal(got, []int{4, 5}) {
		t.Fatalf("after restart handled %v, want [4 5]", got)
	}
	cancel()
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
}
