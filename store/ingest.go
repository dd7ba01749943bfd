package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// IngestAsync queues a verified range of another node's stream with the
// writer and returns without waiting for its commit (see
// replicate.Store.IngestAsync). The writer takes requests in the order they
// are queued and commits whatever waits in one transaction, so a pull that
// keeps several ranges queued gets them written with one fsync while it
// receives the next; a range that does not continue the stream (because
// one before it failed) is refused with chain.ErrStale. blocks, if not
// nil, are the record blocks the events arrived in: blocks that a peer's
// store made are valid here too, so the writer stores their bytes rather
// than encode every record again, unless a block spans two aligned ranges
// of offsets (drop.go needs each in one) or a record's tags need sorting.
func (n *Store) IngestAsync(ctx context.Context, events []event.Event, blocks []chain.Block, head chain.SignedHead) (func() error, error) {
	if len(events) == 0 {
		return func() error { return nil }, nil
	}
	req, err := n.ingestRequest(events, blocks, head)
	if err != nil {
		return nil, err
	}
	if err := n.w.enqueue(ctx, req); err != nil {
		return nil, err
	}
	return func() error {
		res := <-req.res
		return res.err
	}, nil
}

// ingestRequest checks a verified range for what the store needs beyond
// the chain (its own stream, valid tags) and makes it a write request,
// which keeps blocks (those events arrived in, or nil) if they can be
// stored as they are.
func (n *Store) ingestRequest(events []event.Event, blocks []chain.Block, head chain.SignedHead) (*writeReq, error) {
	if head.Stream.Node() == n.nodeID {
		return nil, fmt.Errorf("ingest: %s is this node's own stream: %w", head.Stream, chain.ErrStale)
	}
	cloned := false // events are the caller's: tags are normalised in a copy
	for i := range events {
		e := &events[i]
		if e.Stream != head.Stream {
			return nil, fmt.Errorf("ingest: event of %s in a range of %s", e.Stream, head.Stream)
		}
		// The origin signed them, but the tag index needs tags that are
		// non-empty and free of NUL bytes; the chain hash covers tags as a
		// sorted set, so storing them sorted changes nothing.
		for _, t := range e.Tags {
			if t == "" || strings.IndexByte(t, 0) >= 0 {
				return nil, fmt.Errorf("ingest: event %s/%d has an invalid tag %q: %w", e.Stream, e.Offset, t, chain.ErrMalformed)
			}
		}
		if !sortedSet(e.Tags) {
			if !cloned {
				events, cloned = slices.Clone(events), true
				e = &events[i]
			}
			tags := slices.Clone(e.Tags)
			slices.Sort(tags)
			e.Tags = slices.Compact(tags)
		}
	}
	req := &writeReq{stream: head.Stream, ingest: &ingestReq{events: events, head: head}}
	if !cloned && storable(blocks, events) {
		req.ingest.blocks = blocks
	}
	if err := n.w.estimate(req); err != nil {
		return nil, err
	}
	return req, nil
}

// sortedSet reports whether tags are strictly increasing: sorted and
// without duplicates.
func sortedSet(tags []string) bool {
	for i := 1; i < len(tags); i++ {
		if tags[i-1] >= tags[i] {
			return false
		}
	}
	return true
}

// storable reports whether blocks hold exactly events, in order, and can
// be stored as they are: each within one aligned range of offsets.
func storable(blocks []chain.Block, events []event.Event) bool {
	next := events[0].Offset
	for _, b := range blocks {
		if b.Count < 1 || b.First != next || b.First/dropAlign != b.Last()/dropAlign {
			return false
		}
		next = b.Last() + 1
	}
	return len(blocks) > 0 && next == events[len(events)-1].Offset+1
}
