package sdk_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/api/client"
	"github.com/edgelog/edgelog/event"
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
	rec := newRecorder()
	rec.setFailing(1, true)
	for i := range 3 {
		inject(t, log, a, uint64(10+i), uint64(i), i)     // a: 0 1 2
		inject(t, log, b, uint64(10+i), uint64(i), 100+i) // b: 100 101 102
	}
	ctx, cancel := context.WithCancel(sdktest.Context(t))
	defer cancel()
	c, err := sdk.Consume(ctx, log, "c1", sdk.Where(sdk.Tag("tick")), rec.handle,
		sdk.Backoff(time.Millisecond, 3*time.Millisecond), sdk.MaxAttempts(4), sdk.WithSleep(rec.sleep))
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
	// The saved status shows the blocked stream.
	sdktest.Eventually(t, "blocked stream saved", func() bool {
		st, ok, _ := log.LoadConsumer(ctx, "c1")
		return ok && st.Running && len(st.Blocked) == 1 && st.Blocked[0].Stream == a && st.Blocked[0].Attempts == 4 && st.Blocked[0].Error == "boom"
	})
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
	st, ok, err := log.LoadConsumer(ctx, "c1")
	if err != nil || !ok || st.Running || len(st.Blocked) != 0 || st.Checkpoint[a] != 2 || st.Checkpoint[b] != 3 {
		t.Fatalf("saved status after stop: %+v, %v, %v", st, ok, err)
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

// TestConsumerStatusInNodeInfo runs a consumer through a remote client
// whose handler fails on one event: the node's info (over HTTP) shows the
// consumer, its checkpoint and its blocked stream; a consumer of another
// app with the same name is kept apart.
func TestConsumerStatusInNodeInfo(t *testing.T) {
	e := openEmbedded(t, sdk.WithHTTP("127.0.0.1:0"))
	r := dial(t, e.URL())
	ctx, cancel := context.WithCancel(sdktest.Context(t))
	defer cancel()
	stream := publishTicks(t, e, 0, 1, 2).Stream
	rec := newRecorder()
	rec.setFailing(1, true)
	c, err := sdk.Consume(ctx, r, "mailer", sdk.Where(sdk.Tag("tick")), rec.handle,
		sdk.MaxAttempts(2), sdk.WithSleep(rec.sleep))
	if err != nil {
		t.Fatal(err)
	}
	other, err := sdk.Consume(ctx, e, "mailer", sdk.Where(sdk.Tag("nothing")), rec.handle)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(e.URL(), sdk.Manifest{AppID: "com.example.cli"})
	if err != nil {
		t.Fatal(err)
	}
	var info event.NodeInfo
	sdktest.Eventually(t, "blocked consumer in node info", func() bool {
		info, err = cl.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The other consumer's first status may land later.
		for _, s := range info.Consumers {
			if s.AppID == "com.example.test" && len(s.Blocked) == 1 && s.Checkpoint[stream] == 0 {
				return len(info.Consumers) == 2
			}
		}
		return false
	})
	if len(info.Consumers) != 2 {
		t.Fatalf("node info lists %d consumers, want 2: %+v", len(info.Consumers), info.Consumers)
	}
	var st sdk.ConsumerStatus
	for _, s := range info.Consumers {
		if s.AppID == "com.example.test" {
			st = s
		}
	}
	if b := st.Blocked[0]; st.Name != "mailer" || !st.Running || b.Stream != stream || b.Event.Offset != 1 || b.Attempts != 2 || b.Error != "boom" {
		t.Fatalf("status %+v", st)
	}
	// Healed before the release, which retries at once.
	rec.setFailing(1, false)
	if !c.Release(stream) {
		t.Fatal("Release: stream was not blocked")
	}
	sdktest.Eventually(t, "released consumer catches up", func() bool {
		s, ok, err := r.LoadConsumer(ctx, "mailer")
		return err == nil && ok && len(s.Blocked) == 0 && s.Checkpoint[stream] == 2
	})
	cancel()
	if err := errors.Join(c.Wait(), other.Wait()); err != nil {
		t.Fatal(err)
	}
	if s, ok, err := r.LoadConsumer(sdktest.Context(t), "mailer"); err != nil || !ok || s.Running {
		t.Fatalf("after stop: %+v, %v, %v", s, ok, err)
	}
}
