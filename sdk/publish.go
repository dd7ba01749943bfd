package sdk

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/edgelog/edgelog/event"
)

// PublishIdempotent publishes events unless key was used before, in which
// case it returns the metas of that first publish and writes nothing. Reusing
// a key with different events fails with ErrIdempotencyMismatch.
//
// Keys are kept in the KV (see KV), so they hold across restarts. Calls with
// the same key through this Embedded are serialized. What it cannot promise
// until the node stores keys itself: a crash between the publish and the
// write of the key leaves the events published without the key, and a retry
// then publishes them again; and two processes (or an Embedded and a
// Remote) sharing a node do not see each other's keys.
func (e *Embedded) PublishIdempotent(ctx context.Context, key string, events ...Draft) ([]Meta, error) {
	return publishIdempotent(ctx, e.x, e.publishLocked, key, events)
}

// PublishIdempotent is Embedded.PublishIdempotent over the HTTP API; its keys
// live in this client's KV (WithDataDir), not on the node.
func (r *Remote) PublishIdempotent(ctx context.Context, key string, events ...Draft) ([]Meta, error) {
	return publishIdempotent(ctx, r.x, r.publishLocked, key, events)
}

// PublishIf publishes events only if no local event (one of the answering
// node's own streams) selected by q sorts after since, the EventKey of the
// last event the caller's decision was based on (typically the key returned
// by Aggregate.State; the zero key means none). Otherwise it publishes
// nothing and returns a *ConflictError listing those events.
//
// For an Embedded, the check and the write are atomic against every other
// publish through the same Embedded (its Publish, PublishIdempotent and its
// HTTP API): they wait while PublishIf holds the SDK's write lock. Writers in
// other processes are not covered.
//
// What no guarded publish can promise in a partitioned swarm: events of
// other nodes are not checked (they may exist on a peer out of reach, and
// arrive later), so two nodes can both pass the guard for the same entity.
// Such conflicts surface afterwards, when the events replicate, as time
// travel; design reducers to resolve them deterministically.
func (e *Embedded) PublishIf(ctx context.Context, q Query, since EventKey, events ...Draft) ([]Meta, error) {
	return publishIf(ctx, e, e.x, e.publishLocked, q, since, events)
}

// PublishIf is Embedded.PublishIf over the HTTP API. The check and the write
// are two requests: atomic only against other publishes through this same
// Remote, not against other clients of the node or the node's own writers.
func (r *Remote) PublishIf(ctx context.Context, q Query, since EventKey, events ...Draft) ([]Meta, error) {
	return publishIf(ctx, r, r.x, r.publishLocked, q, since, events)
}

type publishFunc func(ctx context.Context, ds []event.Draft) ([]Meta, error)

// idemRecord is what the KV holds per idempotency key.
type idemRecord struct {
	Fingerprint []byte `cbor:"1,keyasint"`
	Metas       []Meta `cbor:"2,keyasint"`
}

func publishIdempotent(ctx context.Context, x *extras, publish publishFunc, key string, events []Draft) ([]Meta, error) {
	if key == "" {
		return nil, fmt.Errorf("sdk: publish idempotent: %w: empty key", ErrInvalid)
	}
	ds, err := encodeDrafts(events)
	if err != nil {
		return nil, err
	}
	fp := fingerprint(ds)
	unlock := x.lockKey(key)
	defer unlock()
	kvKey := "idem/" + key
	raw, ok, err := x.kv.Get(ctx, kvKey)
	if err != nil {
		return nil, fmt.Errorf("sdk: publish idempotent: %w", err)
	}
	if ok {
		var rec idemRecord
		if err := event.UnmarshalCBOR(raw, &rec); err != nil {
			return nil, fmt.Errorf("sdk: publish idempotent: record of key %q: %w", key, err)
		}
		if !slices.Equal(rec.Fingerprint, fp) {
			return nil, fmt.Errorf("sdk: publish idempotent: key %q: %w", key, ErrIdempotencyMismatch)
		}
		return rec.Metas, nil
	}
	x.writeMu.RLock()
	metas, err := publish(ctx, ds)
	x.writeMu.RUnlock()
	if err != nil {
		return nil, err
	}
	rec, err := event.MarshalCBOR(idemRecord{Fingerprint: fp, Metas: metas})
	if err == nil {
		err = x.kv.Put(context.WithoutCancel(ctx), kvKey, rec)
	}
	if err != nil {
		return metas, fmt.Errorf("sdk: publish idempotent: events published but key %q not recorded: %w", key, err)
	}
	return metas, nil
}

// fingerprint hashes the tags and payloads of drafts.
func fingerprint(ds []event.Draft) []byte {
	h := sha256.New()
	for _, d := range ds {
		tags := slices.Clone(d.Tags)
		slices.Sort(tags)
		tags = slices.Compact(tags)
		fmt.Fprintf(h, "%d:%q:%d:", len(tags), tags, len(d.Payload))
		h.Write(d.Payload)
	}
	return h.Sum(nil)
}

func publishIf(ctx context.Context, log EventLog, x *extras, publish publishFunc, q Query, since EventKey, events []Draft) ([]Meta, error) {
	if err := q.Err(); err != nil {
		return nil, err
	}
	ds, err := encodeDrafts(events)
	if err != nil {
		return nil, err
	}
	x.writeMu.Lock()
	defer x.writeMu.Unlock()
	var changed []Event
	for ev, err := range log.Query(ctx, q.and(IsLocal), Descending()) {
		if err != nil {
			return nil, fmt.Errorf("sdk: publish if: checking the guard: %w", err)
		}
		if !since.Less(ev.Key()) {
			break
		}
		changed = append(changed, ev)
	}
	if len(changed) > 0 {
		slices.Reverse(changed)
		return nil, &ConflictError{Changed: changed}
	}
	return publish(ctx, ds)
}
