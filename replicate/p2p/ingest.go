package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
	"github.com/edgelog/edgelog/replicate"
)

// serialStore is the service's Store as its pulls and fresh events use
// it: queueing an ingest and skipping to a floor hold the service's ingest
// lock, so one ingest at a time checks the present offset; waiting for an
// ingest to be stored does not.
type serialStore struct {
	replicate.Store
	mu sync.Mutex
}

func (l *serialStore) IngestAsync(ctx context.Context, events []event.Event, blocks []chain.Block, head chain.SignedHead) (func() error, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Store.IngestAsync(ctx, events, blocks, head)
}

func (l *serialStore) SkipTo(ctx context.Context, floor chain.Head) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Store.SkipTo(ctx, floor)
}

// ingestFresh stores the fresh batches of verified announces, taken in
// order, that extend what the store holds, and returns the offsets stored
// per stream. The batches of one stream that follow each other are stored
// in one Ingest, under the last one's head; the streams are stored
// concurrently, so a sync node waits for one fsync for them all. Batches
// that do not connect to what is held are skipped (the planner pulls).
//
// forged[i] is set, wrapping ErrIntegrity, if announce i carried a forged
// batch (its other batches count); err is the store's trouble.
//
// An announce's checked fresh holds what the gossip validator verified:
// the events that chain from the head held then; when the batch still
// extends that head (same offset and hash) they are taken without
// verifying again.
func (s *Service) ingestFresh(ctx context.Context, as []*validAnnounce) (stored map[event.StreamID]uint64, forged []error, err error) {
	forged = make([]error, len(as))
	s.serial.mu.Lock() // from reading the heads until the runs are queued
	defer s.serial.mu.Unlock()
	heads, err := s.cfg.Store.Heads(ctx)
	if err != nil {
		return nil, forged, fmt.Errorf("fresh events: %w", err)
	}
	type run struct {
		events []event.Event
		head   chain.SignedHead
	}
	runs := map[event.StreamID]*run{}
	for i, v := range as {
		for j, f := range v.a.Fresh {
			if f.Head.Stream.Node() == s.self.String() {
				continue
			}
			prev, have := chain.Head{}, int64(-1)
			if r := runs[f.Head.Stream]; r != nil {
				prev, have = r.head.Head, int64(r.head.Offset)
			} else if h, ok := heads[f.Head.Stream]; ok {
				prev, have = h.Head, int64(h.Offset)
			}
			var evs []event.Event
			if j < len(v.fresh) && v.fresh[j].OK && v.fresh[j].Have == have && v.fresh[j].Prev == prev.Hash {
				evs = v.fresh[j].Events
			} else if evs, err = replicate.FreshRange(prev, have, f, s.heads.verify); err != nil {
				forged[i] = err
				continue
			}
			if len(evs) == 0 {
				continue
			}
			r := runs[f.Head.Stream]
			if r == nil {
				r = &run{}
				runs[f.Head.Stream] = r
			}
			r.events = append(r.events, evs...)
			r.head = f.Head
		}
	}
	stored = make(map[event.StreamID]uint64, len(runs))
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for st, r := range runs {
		wg.Go(func() {
			err := replicate.Ingest(ctx, s.cfg.Store, r.events, r.head)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, chain.ErrStale): // a pull stored them first
			case err != nil:
				errs = append(errs, fmt.Errorf("fresh events of %s: store: %w", st, err))
			default:
				stored[st] = r.head.Offset
				s.ingested(st)
				s.stats.fresh.Add(uint64(len(r.events)))
				s.log.Debug("stored fresh events", slog.String("stream", string(st)), slog.Uint64("offset", r.head.Offset), slog.Int("events", len(r.events)))
			}
		})
	}
	wg.Wait()
	return stored, forged, errors.Join(errs...)
}

// expiryToAnnounce returns what the store says about floors and rules:
// all of it, bounded like the heads, for a full announce; for one of own
// streams, what concerns the streams of heads.
func (s *Service) expiryToAnnounce(heads []chain.SignedHead, full bool) []expiry.StreamExpiry {
	xs := s.cfg.Store.Expiry()
	if !full {
		in := make(map[event.StreamID]bool, len(heads))
		for _, h := range heads {
			in[h.Stream] = true
		}
		xs = slices.DeleteFunc(xs, func(x expiry.StreamExpiry) bool { return !in[x.Stream] })
	}
	if len(xs) > s.cfg.Limits.MaxHeads {
		xs = xs[:s.cfg.Limits.MaxHeads]
	}
	return xs
}

// learnRetention passes on the rules a node announced for its own streams;
// rules it announces for other nodes' streams are ignored. The rules are
// also remembered (ruleBook): a store applies a rule only to a stream it
// holds, and a stream's first events may arrive after its origin's last
// announce (by a pull from a relay), so every ingest passes the stream's
// rule on again.
func (s *Service) learnRetention(from peer.ID, xs []expiry.StreamExpiry) {
	for _, x := range xs {
		if x.HasRetention && x.Stream.Node() == from.String() {
			s.rules.put(x.Stream, x.Retention)
			s.cfg.Store.LearnRetention(x.Stream, x.Retention)
		}
	}
}

// ingested passes the rule learnt for stream, if any, to the store, which
// now holds events of it.
func (s *Service) ingested(stream event.StreamID) {
	if r, ok := s.rules.get(stream); ok {
		s.cfg.Store.LearnRetention(stream, r)
	}
}

// ruleBook remembers the retention rules origins announced, bounded: past
// maxRules streams, new ones are no longer remembered (they are still
// passed on when announced). Safe for concurrent use.
type ruleBook struct {
	mu sync.Mutex
	m  map[event.StreamID]expiry.Retention
}

const maxRules = 1 << 16

func (b *ruleBook) put(s event.StreamID, r expiry.Retention) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[event.StreamID]expiry.Retention{}
	}
	if _, ok := b.m[s]; ok || len(b.m) < maxRules {
		b.m[s] = r
	}
}

func (b *ruleBook) get(s event.StreamID) (expiry.Retention, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.m[s]
	return r, ok
}
