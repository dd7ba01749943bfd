package store

import (
	"context"
	"fmt"
	"iter"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// The methods here serve replication (package replicate): what a node
// holds, read back with the signed heads kept in it, and the ranges
// received from peers, already verified, to store.

// Heads returns the signed head at every stream's present offset.
func (n *Store) Heads(ctx context.Context) (map[event.StreamID]chain.SignedHead, error) {
	st := n.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make(map[event.StreamID]chain.SignedHead, len(st.heads))
	for sid, h := range st.heads {
		if h != nil && st.present[sid] >= 0 {
			out[st.names[sid]] = *h
		}
	}
	return out, nil
}

// Changed is closed at the next commit.
func (n *Store) Changed() <-chan struct{} { return n.st.snapshot().changed }

// ReadRange yields the stream's events in (from, to] with the signed heads
// kept at run ends.
func (n *Store) ReadRange(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
	return n.readChain(ctx, stream, from, to, false)
}

// ReadBlocks yields the stream's events in (from, to] as they are stored,
// in record blocks (block.go) cut at run ends, which are where heads are
// kept, and at from and to.
func (n *Store) ReadBlocks(ctx context.Context, stream event.StreamID, from int64, to uint64) iter.Seq2[chain.Entry, error] {
	return n.readChain(ctx, stream, from, to, true)
}

// readChain is ReadRange, or ReadBlocks if blocks is set.
func (n *Store) readChain(ctx context.Context, stream event.StreamID, from int64, to uint64, blocks bool) iter.Seq2[chain.Entry, error] {
	return func(yield func(chain.Entry, error) bool) {
		done, err := n.enter()
		if err != nil {
			yield(chain.Entry{}, err)
			return
		}
		defer done()
		v := n.st.snapshot()
		sid, ok := v.sids[stream]
		if !ok || v.present[sid] < 0 {
			return
		}
		to = min(to, uint64(v.present[sid]))
		txn, end := n.st.beginRead()
		defer end()
		floor, floorHead, err := readFloor(txn, stream, sid)
		if err != nil {
			yield(chain.Entry{}, err)
			return
		}
		if floorHead != nil && from < int64(floor)-1 {
			// Expired below the floor: the answer starts there.
			if !yield(chain.Entry{Floor: floorHead}, nil) {
				return
			}
			from = int64(floor) - 1
		}
		pl := &readPlan{v: v, local: make([]bool, len(v.names))}
		rd := newBlockReader(txn, pl)
		defer rd.close()
		var part []byte // a block cut to the range
		for run, err := range runsFrom(txn, sid, uint64(from+1)) {
			if err != nil {
				yield(chain.Entry{}, err)
				return
			}
			head, err := decodeRunHead(stream, run, run.head)
			if err != nil {
				yield(chain.Entry{}, err)
				return
			}
			// The run's events in (from, to], a block at a time.
			for off := max(run.first, uint64(from+1)); off <= min(run.last(), to); {
				if err := n.checkStop(ctx); err != nil {
					yield(chain.Entry{}, err)
					return
				}
				b, err := rd.at(sid, off, noBlock)
				if err != nil {
					yield(chain.Entry{}, fmt.Errorf("event %d of %s: %w", off, stream, err))
					return
				}
				recs := b.recs[off-b.first : min(uint64(len(b.recs)), min(run.last(), to)-b.first+1)]
				for i, rec := range recs {
					if want := run.lamports[off-run.first+uint64(i)]; rec.lamport != want {
						yield(chain.Entry{}, fmt.Errorf("%w: event %d of %s has Lamport time %d, the stream index says %d", errBadRecord, off+uint64(i), stream, rec.lamport, want))
						return
					}
				}
				last := off + uint64(len(recs)) - 1
				if blocks {
					// The whole block as stored, or the part asked for;
					// the caller copies it (see replicate.Store.ReadBlocks).
					data := b.val
					if len(recs) < len(b.recs) {
						part = appendBlock(part[:0], recs)
						data = part
					}
					e := chain.Entry{Block: &chain.Block{First: off, Count: len(recs), Data: data}}
					if last == run.last() {
						e.Head = head
					}
					if !yield(e, nil) {
						return
					}
				} else {
					for i, rec := range recs {
						ev, err := pl.decode(pos{lamport: rec.lamport, sid: sid, offset: off + uint64(i)}, rec, allEvents)
						if err != nil {
							yield(chain.Entry{}, err)
							return
						}
						e := chain.Entry{Event: *ev}
						if off+uint64(i) == run.last() {
							e.Head = head
						}
						if !yield(e, nil) {
							return
						}
					}
				}
				off = last + 1
			}
			if run.last() >= to {
				return
			}
		}
	}
}

// Expiry returns the floors held and the rules of this node's streams.
func (n *Store) Expiry() []expiry.StreamExpiry { return n.expiryOf() }

// LearnRetention applies the rule a stream's origin announced to the copy
// held here.
func (n *Store) LearnRetention(stream event.StreamID, rule expiry.Retention) {
	n.learnRetention(stream, rule)
}

// SkipTo continues a stream at a peer's floor (see replicate.Store.SkipTo).
func (n *Store) SkipTo(ctx context.Context, floor chain.Head) error {
	if floor.Stream.Node() == n.nodeID {
		return fmt.Errorf("skip: %s is this node's own stream: %w", floor.Stream, chain.ErrStale)
	}
	return n.skipTo(ctx, floor)
}
