package replicate

import (
	"context"
	"sync"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// Bounds of the ranges a Fetch has queued but not yet seen stored: enough
// for the store to fill a large transaction while the previous one
// commits, and little enough memory for a small device.
const (
	maxInflightBytes  = 16 << 20
	maxInflightRanges = 64
)

// ingestPipe stores a Fetch's verified ranges through Store.IngestAsync:
// the fetching goroutine queues them in offset order (put), a second
// goroutine waits for each in turn, reports progress and records the
// highest offset stored. After a failed range the pipe refuses more and
// cancels the fetch, so the connection is closed and its reads return.
type ingestPipe struct {
	st       Store
	progress func(uint64)
	cancel   context.CancelFunc
	queue    chan inflight
	done     chan struct{}

	mu     sync.Mutex
	cond   *sync.Cond // signalled when bytes fall or err is set
	bytes  int        // events queued and not yet stored
	stored int64      // highest offset stored
	err    error      // the first failed range's error
}

type inflight struct {
	wait   func() error
	offset uint64
	bytes  int
}

func newIngestPipe(st Store, from int64, progress func(uint64), cancel context.CancelFunc) *ingestPipe {
	p := &ingestPipe{st: st, progress: progress, cancel: cancel, stored: from,
		queue: make(chan inflight, maxInflightRanges), done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.ack()
	return p
}

// put queues events, verified up to head, behind the ranges queued before;
// blocks, if not nil, are the blocks they arrived in.
// It blocks while the ranges in flight hold more than maxInflightBytes and
// returns the first error of any range.
func (p *ingestPipe) put(ctx context.Context, events []event.Event, blocks []chain.Block, head chain.SignedHead) error {
	size := 0
	for i := range events {
		size += chain.EventSize(&events[i])
	}
	p.mu.Lock()
	for p.err == nil && p.bytes > 0 && p.bytes+size > maxInflightBytes {
		p.cond.Wait()
	}
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return err
	}
	p.bytes += size
	p.mu.Unlock()
	wait, err := p.st.IngestAsync(ctx, events, blocks, head)
	if err != nil {
		p.fail(err)
		return err
	}
	// The queue's capacity bounds the ranges in flight: this blocks until
	// the oldest is stored when it is full.
	p.queue <- inflight{wait: wait, offset: head.Offset, bytes: size}
	return nil
}

// ack waits for the queued ranges in order.
func (p *ingestPipe) ack() {
	defer close(p.done)
	for q := range p.queue {
		err := q.wait()
		p.mu.Lock()
		p.bytes -= q.bytes
		if err != nil && p.err == nil {
			p.err = err
			p.cancel()
		}
		failed := p.err != nil
		if !failed {
			p.stored = int64(q.offset)
		}
		p.cond.Broadcast()
		p.mu.Unlock()
		if !failed && p.progress != nil {
			p.progress(q.offset)
		}
	}
}

func (p *ingestPipe) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
		p.cancel()
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// drain waits until every range queued so far is stored or failed, and
// returns the first error. The pipe stays usable.
func (p *ingestPipe) drain() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.err == nil && p.bytes > 0 {
		p.cond.Wait()
	}
	return p.err
}

// skipped records that the store moved up to offset (Store.SkipTo) while
// nothing was queued (after drain).
func (p *ingestPipe) skipped(offset uint64) {
	p.mu.Lock()
	p.stored = max(p.stored, int64(offset))
	p.mu.Unlock()
}

// close waits for every queued range and returns the highest offset stored
// and the first error of a range.
func (p *ingestPipe) close() (int64, error) {
	close(p.queue)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stored, p.err
}
