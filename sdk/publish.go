package sdk

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/event"
)

// PublishOptions make a publish idempotent, guarded, or both. The node
// decides both inside its writer, atomically with storing the events.
type PublishOptions struct {
	// IdempotencyKey, if not empty, makes the publish idempotent: the node
	// records the key (per app) with the events' fingerprint and their
	// metas, in the same transaction as the events, so a retry with the
	// same key, even after a crash or restart and even concurrent with the
	// first attempt, returns the first publish's metas and writes nothing.
	// Reusing a key with other events fails with ErrIdempotencyMismatch.
	// Keys are at most 256 bytes and are kept for 7 days by default
	// (node.Config.IdempotencyTTL). The key is checked before the guard, so
	// the retry of a guarded publish that succeeded returns its metas.
	IdempotencyKey string
	// Guard, if set, publishes only if the guard holds; see Guard.
	Guard *Guard
}

// Guard is the optimistic-concurrency check of event sourcing: publish
// only if the node holds no event selected by Query that sorts after Since,
// the key of the last event the decision was based on (as returned by
// Aggregate.State; the zero key means none, so any selected event fails
// the guard). A failed guard publishes nothing and returns a
// *ConflictError.
//
// The node checks the guard against every event it holds, its own and
// those replicated to it so far; add IsLocal to the query to consider only
// the node's own streams. What it cannot promise in a partitioned swarm:
// events written meanwhile on other nodes that have not reached this one
// are not seen, so two nodes can both pass the guard for the same entity.
// Such conflicts surface later, when the events replicate, as time travel
// (an older event arriving), and an event replicated late with a key before
// Since does not fail the guard either. Design reducers to resolve them
// deterministically (for example, the first completion in EventKey order
// wins).
type Guard struct {
	Query Query
	Since EventKey
}

func (o PublishOptions) toEvent() (event.PublishOptions, error) {
	out := event.PublishOptions{IdempotencyKey: o.IdempotencyKey}
	if g := o.Guard; g != nil {
		if err := g.Query.Err(); err != nil {
			return out, fmt.Errorf("sdk: publish: guard: %w", err)
		}
		out.Guard = &event.Guard{Query: g.Query.q, After: g.Since}
	}
	return out, nil
}

// PublishIdempotent publishes events with an idempotency key; see
// PublishOptions.IdempotencyKey.
func (e *Embedded) PublishIdempotent(ctx context.Context, key string, events ...Draft) ([]Meta, error) {
	return publishIdempotent(ctx, e, key, events)
}

// PublishIf publishes events only if the guard (q, since) holds; see Guard.
func (e *Embedded) PublishIf(ctx context.Context, q Query, since EventKey, events ...Draft) ([]Meta, error) {
	return e.PublishWith(ctx, PublishOptions{Guard: &Guard{Query: q, Since: since}}, events...)
}

// PublishWith publishes events with options; see EventLog.
func (e *Embedded) PublishWith(ctx context.Context, opts PublishOptions, events ...Draft) ([]Meta, error) {
	ds, err := encodeDrafts(events)
	if err != nil {
		return nil, err
	}
	eo, err := opts.toEvent()
	if err != nil {
		return nil, err
	}
	metas, err := e.n.PublishWith(ctx, e.appID, ds, eo)
	if err != nil {
		if ce, ok := errors.AsType[*event.ConflictError](err); ok {
			c := &ConflictError{More: ce.More}
			for i := range ce.Changed {
				c.Changed = append(c.Changed, fromEvent(&ce.Changed[i]))
			}
			return nil, c
		}
		return nil, fmt.Errorf("sdk: publish: %w", err)
	}
	return metas, nil
}

// PublishIdempotent is Embedded.PublishIdempotent over the HTTP API; the
// node keeps the key.
func (r *Remote) PublishIdempotent(ctx context.Context, key string, events ...Draft) ([]Meta, error) {
	return publishIdempotent(ctx, r, key, events)
}

// PublishIf is Embedded.PublishIf over the HTTP API: the node checks the
// guard atomically with the write, as for an embedded node.
func (r *Remote) PublishIf(ctx context.Context, q Query, since EventKey, events ...Draft) ([]Meta, error) {
	return r.PublishWith(ctx, PublishOptions{Guard: &Guard{Query: q, Since: since}}, events...)
}

// PublishWith publishes events with options; see EventLog.
func (r *Remote) PublishWith(ctx context.Context, opts PublishOptions, events ...Draft) ([]Meta, error) {
	ds, err := encodeDrafts(events)
	if err != nil {
		return nil, err
	}
	req := api.PublishRequest{IdempotencyKey: opts.IdempotencyKey}
	if g := opts.Guard; g != nil {
		if err := g.Query.Err(); err != nil {
			return nil, fmt.Errorf("sdk: publish: guard: %w", err)
		}
		req.IfNoneMatchSince = &api.Guard{Query: g.Query.String(), After: g.Since}
	}
	return r.publish(ctx, ds, req)
}

func publishIdempotent(ctx context.Context, log EventLog, key string, events []Draft) ([]Meta, error) {
	if key == "" {
		return nil, fmt.Errorf("sdk: publish idempotent: %w: empty key", ErrInvalid)
	}
	return log.PublishWith(ctx, PublishOptions{IdempotencyKey: key}, events...)
}

// remoteConflict turns an ERR_CONFLICT answer into a *ConflictError.
func remoteConflict(err error) (*ConflictError, bool) {
	ae, ok := errors.AsType[*api.Error](err)
	if !ok || ae.Code != api.CodeConflict {
		return nil, false
	}
	c := &ConflictError{}
	if ae.Conflict != nil {
		c.More = ae.Conflict.More
		for _, l := range ae.Conflict.Changed {
			payload, perr := event.PayloadFromJSON(l.Payload)
			if perr != nil {
				payload = nil
			}
			c.Changed = append(c.Changed, Event{
				Meta: Meta{Lamport: l.Lamport, Offset: l.Offset, Stream: l.Stream, Timestamp: l.Timestamp},
				Tags: l.Tags, AppID: l.AppID, Payload: payload,
			})
		}
	}
	return c, true
}

// ConflictError is returned when a guarded publish fails: events selected
// by the guard's query sort after its key. Nothing was published.
type ConflictError struct {
	// Changed lists the newest conflicting events (at most 16), in
	// ascending EventKey order.
	Changed []Event
	// More is true when more events conflict than Changed lists.
	More bool
}

// Error implements error, in the words of the node's own conflict error.
func (e *ConflictError) Error() string {
	ce := event.ConflictError{More: e.More, Changed: make([]event.Event, len(e.Changed))}
	for i, ev := range e.Changed {
		ce.Changed[i] = event.Event{Lamport: ev.Lamport, Stream: ev.Stream, Offset: ev.Offset, Tags: ev.Tags}
	}
	return "sdk: " + ce.Error()
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
