package sdk

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgelog/edgelog/event"
)

// Handler handles one event of a consumer. An error makes the consumer
// retry the event (after a backoff); the handler must tolerate seeing an
// event again, since delivery is at least once.
type Handler func(ctx context.Context, ev Event) error

// ConsumerOption configures Consume.
type ConsumerOption func(*consumerOpts)

type consumerOpts struct {
	initial, max time.Duration
	attempts     int
	store        ConsumerStore
	sleep        func(ctx context.Context, d time.Duration) error
}

// Backoff sets the wait before retrying a failed event: initial, doubling
// up to max (defaults 100ms and 30s).
func Backoff(initial, max time.Duration) ConsumerOption {
	return func(o *consumerOpts) { o.initial, o.max = initial, max }
}

// MaxAttempts sets after how many failed attempts of one event its stream
// is blocked until Release (default 5).
func MaxAttempts(n int) ConsumerOption { return func(o *consumerOpts) { o.attempts = max(n, 1) } }

// CheckpointStore sets where the consumer keeps its status and checkpoint
// (default the log itself, if it is a ConsumerStore: *Embedded and *Remote
// keep it on their node, sdktest.MemLog in memory).
func CheckpointStore(s ConsumerStore) ConsumerOption {
	return func(o *consumerOpts) { o.store = s }
}

// WithSleep replaces the backoff waits (tests inject a fake clock here). It
// returns ctx's error if ctx ends first.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) ConsumerOption {
	return func(o *consumerOpts) { o.sleep = sleep }
}

// BlockedStream is a stream a consumer stopped handling: its next event
// failed MaxAttempts times.
type BlockedStream struct {
	Stream   StreamID
	Event    EventKey // the event that keeps failing
	Attempts int
	Err      error // the last failure
}

// Consumer is a running durable consumer; see Consume.
type Consumer struct {
	name string
	log  EventLog
	q    Query
	h    Handler
	o    consumerOpts
	st   ConsumerStore

	mu       sync.Mutex
	done     OffsetMap // handled, per stream: the checkpoint
	workers  map[StreamID]*worker
	blocked  map[StreamID]BlockedStream
	err      error
	running  bool
	flushReq chan struct{}

	wg       sync.WaitGroup // workers
	finished chan struct{}  // closed when everything stopped
}

type worker struct {
	mu      sync.Mutex
	queue   []Event
	notify  chan struct{} // a new event was queued
	release chan struct{} // Release was called
}

// Consume starts a durable consumer called name (its checkpoint's key) of
// the events q selects, and returns at once; it runs until ctx ends.
//
// Events are delivered at least once: in offset order within each stream,
// each stream in its own goroutine, so streams are handled in parallel and
// a slow or failing stream does not hold up the others. After an event is
// handled its offset goes into the checkpoint (an OffsetMap), which is
// saved with the consumer's status in the ConsumerStore (by default on the
// node, per app and name) in the background and once more when the consumer
// stops; a consumer started again with the same name resumes after it.
// After a crash, events handled since the last checkpoint write are
// delivered again.
//
// A failing handler is retried with exponential backoff; after MaxAttempts
// failures of one event its stream is blocked (see Blocked) until Release.
// The status saved on the node (checkpoint, blocked streams with their last
// error and attempts, running) shows in the node's info (GET
// /api/v2/node/info, edgelog node info).
func Consume(ctx context.Context, log EventLog, name string, q Query, h Handler, opts ...ConsumerOption) (*Consumer, error) {
	o := consumerOpts{initial: 100 * time.Millisecond, max: 30 * time.Second, attempts: 5, sleep: sleepCtx}
	for _, f := range opts {
		f(&o)
	}
	if o.store == nil {
		if s, ok := log.(ConsumerStore); ok {
			o.store = s
		}
	}
	switch {
	case name == "" || len(name) > event.MaxConsumerNameLen || strings.IndexByte(name, 0) >= 0:
		return nil, fmt.Errorf("sdk: consume: %w: name must be 1..%d bytes without NUL", ErrInvalid, event.MaxConsumerNameLen)
	case h == nil:
		return nil, fmt.Errorf("sdk: consume %s: %w: nil handler", name, ErrInvalid)
	case o.store == nil:
		return nil, fmt.Errorf("sdk: consume %s: %w: no store for the checkpoint (use CheckpointStore)", name, ErrInvalid)
	case q.Err() != nil:
		return nil, fmt.Errorf("sdk: consume %s: %w", name, q.Err())
	}
	c := &Consumer{
		name: name, log: log, q: q, h: h, o: o, st: o.store, running: true,
		done: OffsetMap{}, workers: map[StreamID]*worker{}, blocked: map[StreamID]BlockedStream{},
		flushReq: make(chan struct{}, 1), finished: make(chan struct{}),
	}
	prev, ok, err := c.st.LoadConsumer(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("sdk: consume %s: reading checkpoint: %w", name, err)
	}
	if ok && prev.Checkpoint != nil {
		c.done = prev.Checkpoint.Clone()
	}
	c.requestFlush() // report the consumer as running
	go c.run(ctx)
	return c, nil
}

// requestFlush asks the flusher to save the status.
func (c *Consumer) requestFlush() {
	select {
	case c.flushReq <- struct{}{}:
	default:
	}
}

func (c *Consumer) run(ctx context.Context) {
	// The flusher's saves are not cancelled: one cancelled by the client
	// may still be applied by a remote node after the final save below,
	// reviving an old status (a stopped consumer shown running).
	flushDone, stopFlush := make(chan struct{}), make(chan struct{})
	go func() { defer close(flushDone); c.flusher(context.WithoutCancel(ctx), stopFlush) }()
	for ev, err := range c.log.Subscribe(ctx, c.q, After(c.Checkpoint())) {
		if err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("sdk: consume %s: %w", c.name, err)
			c.mu.Unlock()
			break
		}
		c.enqueue(ctx, ev)
	}
	<-ctx.Done() // a failed subscription still lets handlers finish until ctx ends
	c.wg.Wait()
	close(stopFlush)
	<-flushDone
	c.mu.Lock()
	c.running = false
	c.mu.Unlock()
	if err := c.flush(context.WithoutCancel(ctx)); err != nil {
		c.mu.Lock()
		c.err = errors.Join(c.err, err)
		c.mu.Unlock()
	}
	close(c.finished)
}

func (c *Consumer) enqueue(ctx context.Context, ev Event) {
	c.mu.Lock()
	w := c.workers[ev.Stream]
	if w == nil {
		w = &worker{notify: make(chan struct{}, 1), release: make(chan struct{}, 1)}
		c.workers[ev.Stream] = w
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.work(ctx, w) }()
	}
	c.mu.Unlock()
	w.mu.Lock()
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// work handles one stream's events in order.
func (c *Consumer) work(ctx context.Context, w *worker) {
	for {
		w.mu.Lock()
		var ev Event
		have := len(w.queue) > 0
		if have {
			ev = w.queue[0]
		}
		w.mu.Unlock()
		if !have {
			select {
			case <-w.notify:
				continue
			case <-ctx.Done():
				return
			}
		}
		if !c.handle(ctx, w, ev) {
			return
		}
		w.mu.Lock()
		w.queue[0] = Event{}
		w.queue = w.queue[1:]
		w.mu.Unlock()
		c.mu.Lock()
		c.done[ev.Stream] = ev.Offset
		c.mu.Unlock()
		c.requestFlush()
	}
}

// handle runs the handler on ev until it succeeds (true) or ctx ends
// (false), backing off between failures and blocking the stream after
// MaxAttempts of them.
func (c *Consumer) handle(ctx context.Context, w *worker, ev Event) bool {
	wait, attempts := c.o.initial, 0
	for {
		err := c.h(ctx, ev)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		attempts++
		if attempts >= c.o.attempts {
			c.mu.Lock()
			c.blocked[ev.Stream] = BlockedStream{Stream: ev.Stream, Event: ev.Key(), Attempts: attempts, Err: err}
			c.mu.Unlock()
			c.requestFlush()
			select {
			case <-w.release:
			case <-ctx.Done():
				return false
			}
			wait, attempts = c.o.initial, 0
			continue
		}
		if c.o.sleep(ctx, wait) != nil {
			return false
		}
		wait = min(2*wait, c.o.max)
	}
}

// flusher writes the checkpoint whenever it changed, until stop closes.
func (c *Consumer) flusher(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-c.flushReq:
			_ = c.flush(ctx) // retried with the next change and at the end
		case <-stop:
			return
		}
	}
}

func (c *Consumer) flush(ctx context.Context) error {
	if err := c.st.SaveConsumer(ctx, c.Status()); err != nil {
		return fmt.Errorf("sdk: consume %s: writing checkpoint: %w", c.name, err)
	}
	return nil
}

// Status returns the consumer's status as it saves it: checkpoint, blocked
// streams, running.
func (c *Consumer) Status() ConsumerStatus {
	blocked := c.Blocked()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ConsumerStatus{Name: c.name, Checkpoint: c.done.Clone(), Running: c.running, Blocked: make([]event.BlockedStream, 0, len(blocked))}
	for _, b := range blocked {
		msg := ""
		if b.Err != nil {
			msg = b.Err.Error()
		}
		s.Blocked = append(s.Blocked, event.BlockedStream{Stream: b.Stream, Event: b.Event, Attempts: b.Attempts, Error: msg})
	}
	return s
}

// Checkpoint returns the offsets handled so far, per stream.
func (c *Consumer) Checkpoint() OffsetMap {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done.Clone()
}

// Blocked returns the blocked streams, sorted by stream.
func (c *Consumer) Blocked() []BlockedStream {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Collect(maps.Values(c.blocked))
	slices.SortFunc(out, func(a, b BlockedStream) int { return strings.Compare(string(a.Stream), string(b.Stream)) })
	return out
}

// Release unblocks stream: its failing event is tried again, with a fresh
// count of attempts. It reports whether the stream was blocked.
func (c *Consumer) Release(stream StreamID) bool {
	c.mu.Lock()
	_, ok := c.blocked[stream]
	delete(c.blocked, stream)
	w := c.workers[stream]
	c.mu.Unlock()
	if ok && w != nil {
		select {
		case w.release <- struct{}{}:
		default:
		}
		c.requestFlush()
	}
	return ok
}

// Wait blocks until the consumer stopped (its ctx ended) and its last
// checkpoint is written. It returns the error that ended its subscription
// or failed the last checkpoint write, if any.
func (c *Consumer) Wait() error {
	<-c.finished
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Err returns the error that ended the consumer's subscription so far, or
// nil while it runs normally.
func (c *Consumer) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
