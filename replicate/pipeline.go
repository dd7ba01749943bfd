package replicate

import (
	"context"
	"sync"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// PipelinedStore is a Store that takes a stream's next verified range
// before the previous one is stored. Fetch uses it when the Store has it:
// receiving and verifying a frame then overlap with storing the ranges
// before it, and the store may write several queued ranges in one
// transaction (and one fsync).
type PipelinedStore interface {
	Store

	// IngestAsync queues a range for storing, with Ingest's contract, and
	// returns once it is queued, without waiting for it to be stored. Ranges
	// queued one after another (by one caller, each returned before the next
	// is queued) are stored in that order. wait blocks until the range is
	// stored (as durably as Ingest) or refused, and returns Ingest's error;
	// it must be called exactly once. A range queued behind one that fails
	// no longer continues the stream and fails with ErrStale, so nothing is
	// stored above a gap. err is an error of queueing (the store is closed,
	// ctx ended, the range is invalid): nothing was queued, and wait is nil.
	IngestAsync(ctx context.Context, events []event.Event, head chain.SignedHead) (wait func() error, err error)
}

// BlockIngester is a PipelinedStore that can keep a verified range in the
// blocks it arrived in (PullBlocksProtocol). IngestBlocksAsync is
// IngestAsync, with blocks holding exactly events, in order: the blocks
// events were decoded from by the store's DecodeBlock and then verified.
// The store may keep the blocks' bytes rather than encode the events again.
type BlockIngester interface {
	PipelinedStore
	IngestBlocksAsync(ctx context.Context, events []event.Event, blocks []chain.Block, head chain.SignedHead) (wait func() error, err error)
}

// Bounds of the ranges a Fetch has queued but not yet seen stored: enough
// for the store to fill a large transaction while the previous one
// commits, and little enough memory for a small device.
const (
	maxInflightBytes  = 16 << 20
	maxInflightRanges = 64
)

// ingestPipe stores a Fetch's verified ranges through a PipelinedStore:
// the fetching goroutine queues them in offset order (put), a second
// goroutine waits for each in turn, reports progress and records the
// highest offset stored. After a failed range the pipe refuses more and
// cancels the fetch, so the connection is closed and its reads return.
type ingestPipe struct {
	st       PipelinedStore
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

func newIngestPipe(st PipelinedStore, from int64, progress func(uint64), cancel context.CancelFunc) *ingestPipe {
	p := &ingestPipe{st: st, progress: progress, cancel: cancel, stored: from,
		queue: make(chan inflight, maxInflightRanges), done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.ack()
	return p
}

// put queues events, verified up to head, behind the ranges queued before;
// blocks, if not nil, are the blocks they arrived in (see BlockIngester).
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
	var wait func() error
	var err error
	if bi, ok := p.st.(BlockIngester); ok && blocks != nil {
		wait, err = bi.IngestBlocksAsync(ctx, events, blocks, head)
	} else {
		wait, err = p.st.IngestAsync(ctx, events, head)
	}
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

// close waits for every queued range and returns the highest offset stored
// and the first error of a range.
func (p *ingestPipe) close() (int64, error) {
	close(p.queue)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stored, p.err
}

// pullStore is the Store a pull of the service ingests into: ingests (and
// queueing them) are serialised with the service's other ingests.
func (s *Service) pullStore() Store {
	locked := &lockedStore{Store: s.cfg.Store, mu: &s.ingest}
	if ps, ok := s.cfg.Store.(PipelinedStore); ok {
		return &lockedPipeline{lockedStore: locked, ps: ps}
	}
	return locked
}

// lockedPipeline is a lockedStore over a PipelinedStore: queueing a range
// holds the service's ingest lock, waiting for it does not.
type lockedPipeline struct {
	*lockedStore
	ps PipelinedStore
}

var _ PipelinedStore = (*lockedPipeline)(nil)

func (l *lockedPipeline) IngestAsync(ctx context.Context, events []event.Event, head chain.SignedHead) (func() error, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ps.IngestAsync(ctx, events, head)
}

var _ BlockIngester = (*lockedPipeline)(nil)

// IngestBlocksAsync passes blocks on if the store takes them.
func (l *lockedPipeline) IngestBlocksAsync(ctx context.Context, events []event.Event, blocks []chain.Block, head chain.SignedHead) (func() error, error) {
	bi, ok := l.ps.(BlockIngester)
	if !ok {
		return l.IngestAsync(ctx, events, head)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return bi.IngestBlocksAsync(ctx, events, blocks, head)
}
