package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// book is what a write request carries besides its events: key-value
// writes, an idempotency key and a guard.
type book struct {
	kv []kvOp

	idemKey     []byte // the record's Badger key; nil without a key
	idemName    string // the key as the app gave it, for errors
	fingerprint []byte // of the request's events
	guard       *event.Guard
}

type kvOp struct {
	key, val []byte
	del      bool
}

// idemRecord is what an idempotency key maps to: the fingerprint of the
// events and where they were stored, compactly (stream IDs once).
type idemRecord struct {
	Fingerprint []byte           `cbor:"1,keyasint"`
	Streams     []event.StreamID `cbor:"2,keyasint"`
	Metas       []idemMeta       `cbor:"3,keyasint"`
	Created     int64            `cbor:"4,keyasint"` // unix microseconds
}

type idemMeta struct {
	_         struct{} `cbor:",toarray"`
	Lamport   uint64
	Offset    uint64
	Stream    int // index into Streams
	Timestamp int64
}

func newIdemRecord(fp []byte, metas []event.Meta, created time.Time) idemRecord {
	rec := idemRecord{Fingerprint: fp, Metas: make([]idemMeta, len(metas)), Created: created.UnixMicro()}
	for i, m := range metas {
		j := slices.Index(rec.Streams, m.Stream)
		if j < 0 {
			j = len(rec.Streams)
			rec.Streams = append(rec.Streams, m.Stream)
		}
		rec.Metas[i] = idemMeta{Lamport: m.Lamport, Offset: m.Offset, Stream: j, Timestamp: m.Timestamp}
	}
	return rec
}

func (rec *idemRecord) metas() ([]event.Meta, error) {
	out := make([]event.Meta, len(rec.Metas))
	for i, m := range rec.Metas {
		if m.Stream < 0 || m.Stream >= len(rec.Streams) {
			return nil, fmt.Errorf("%w: idempotency record names stream %d of %d", errBadRecord, m.Stream, len(rec.Streams))
		}
		out[i] = event.Meta{Lamport: m.Lamport, Offset: m.Offset, Stream: rec.Streams[m.Stream], Timestamp: m.Timestamp}
	}
	return out, nil
}

// newBook checks opts and returns the book of a publish of req, or nil if
// opts ask for nothing.
func newBook(appID string, req *writeReq, opts event.PublishOptions) (*book, error) {
	if opts.IdempotencyKey == "" && opts.Guard == nil {
		return nil, nil
	}
	b := &book{guard: opts.Guard}
	if g := opts.Guard; g != nil && g.Query == nil {
		return nil, fmt.Errorf("%w: guard without a query", event.ErrInvalid)
	}
	if k := opts.IdempotencyKey; k != "" {
		if len(k) > event.MaxIdempotencyKeyLen || strings.IndexByte(k, 0) >= 0 {
			return nil, fmt.Errorf("%w: idempotency key: want at most %d bytes without NUL", event.ErrInvalid, event.MaxIdempotencyKeyLen)
		}
		if strings.IndexByte(appID, 0) >= 0 {
			return nil, fmt.Errorf("%w: app id contains NUL", event.ErrInvalid)
		}
		b.idemKey = kvKey(nsIdempotency, appID+"\x00"+k)
		b.idemName = k
		b.fingerprint = fingerprint(req)
	}
	return b, nil
}

// cost estimates the transaction bytes and entries b adds to a request of
// events events.
func (b *book) cost(events int) (size, count int64) {
	for _, op := range b.kv {
		size += int64(len(op.key)+len(op.val)) + entryOverhead
		count++
	}
	if b.idemKey != nil {
		// fingerprint, creation time, a stream ID, and per event a meta of
		// four integers (a publish with routed events may name more streams;
		// the estimate's slack covers a few)
		size += int64(len(b.idemKey)) + 64 + event.MaxStreamIDLen + int64(events)*40 + entryOverhead
		count++
	}
	return size, count
}

// fingerprint hashes the events of req: their tag sets and payloads.
func fingerprint(req *writeReq) []byte {
	h := sha256.New()
	var num [binary.MaxVarintLen64]byte
	put := func(b []byte) {
		h.Write(num[:binary.PutUvarint(num[:], uint64(len(b)))])
		h.Write(b)
	}
	h.Write(num[:binary.PutUvarint(num[:], uint64(len(req.drafts)))])
	for i, d := range req.drafts {
		h.Write(num[:binary.PutUvarint(num[:], uint64(len(req.tags[i])))])
		for _, t := range req.tags[i] {
			put([]byte(t))
		}
		put(d.Payload)
	}
	return h.Sum(nil)
}

// splitBefore reports whether next must go into a later transaction than
// the requests of batch: a guarded publish is checked against committed
// events only, so it must come first in its batch; a publish reusing the
// idempotency key of one already in the batch must see its record.
func splitBefore(batch []*writeReq, next *writeReq) bool {
	b := next.book
	if b == nil {
		return false
	}
	if b.guard != nil {
		return true
	}
	if b.idemKey == nil {
		return false
	}
	for _, r := range batch {
		if r.book != nil && bytes.Equal(r.book.idemKey, b.idemKey) {
			return true
		}
	}
	return false
}

// settle answers the requests of batch that bookkeeping decides without
// writing: retries under a known idempotency key (with the original metas,
// or ErrIdempotencyMismatch) and publishes whose guard fails. It returns the
// others, for the writer to store. It runs in the writer after the previous
// batch committed, so it sees every committed write; splitBefore keeps the
// requests it checks from depending on writes of their own batch.
func (n *Store) settle(batch []*writeReq) []*writeReq {
	var txn *badger.Txn
	defer func() {
		if txn != nil {
			txn.Discard()
		}
	}()
	rest := batch[:0:0]
	for _, req := range batch {
		b := req.book
		if b == nil || (b.idemKey == nil && b.guard == nil) {
			rest = append(rest, req)
			continue
		}
		if txn == nil {
			txn = n.st.db.NewTransaction(false)
		}
		if res, ok := n.settleOne(txn, req); ok {
			req.res <- res
			continue
		}
		rest = append(rest, req)
	}
	return rest
}

func (n *Store) settleOne(txn *badger.Txn, req *writeReq) (writeRes, bool) {
	b := req.book
	if b.idemKey != nil {
		item, err := txn.Get(b.idemKey)
		switch {
		case err == nil:
			var rec idemRecord
			err = item.Value(func(v []byte) error { return event.UnmarshalCBOR(v, &rec) })
			if err != nil {
				return writeRes{err: fmt.Errorf("publish: idempotency record of key %q: %w", b.idemName, err)}, true
			}
			if !bytes.Equal(rec.Fingerprint, b.fingerprint) {
				return writeRes{err: fmt.Errorf("publish: idempotency key %q: %w", b.idemName, event.ErrIdempotencyMismatch)}, true
			}
			metas, err := rec.metas()
			if err != nil {
				return writeRes{err: fmt.Errorf("publish: idempotency record of key %q: %w", b.idemName, err)}, true
			}
			return writeRes{metas: metas}, true
		case !errors.Is(err, badger.ErrKeyNotFound):
			return writeRes{err: storageError("publish: idempotency key", err)}, true
		}
	}
	if b.guard != nil {
		changed, more, err := n.guardConflicts(txn, b.guard)
		if err != nil {
			return writeRes{err: fmt.Errorf("publish: checking the guard: %w", err)}, true
		}
		if len(changed) > 0 {
			return writeRes{err: fmt.Errorf("publish: %w", &event.ConflictError{Changed: changed, More: more})}, true
		}
	}
	return writeRes{}, false
}

// guardConflicts returns the newest events (at most MaxConflictEvents, in
// ascending order) selected by g.Query that sort after g.After, and whether
// there are more.
func (n *Store) guardConflicts(txn *badger.Txn, g *event.Guard) ([]event.Event, bool, error) {
	// Every event present, down to After's Lamport time: the plan resolve
	// would make, without looking up each stream's Lamport range.
	v := n.st.snapshot()
	pl := &readPlan{v: v, bounds: make([]bound, len(v.names)), upper: v.offsets(), local: make([]bool, len(v.names)),
		minL: g.After.Lamport, maxL: ^uint64(0), empty: true}
	for sid, hi := range v.present {
		if sid > 0 && hi >= 0 {
			pl.bounds[sid] = bound{on: true, lo: -1, hi: hi}
			pl.local[sid] = v.names[sid].Node() == n.nodeID
			pl.empty = false
		}
	}
	if pl.empty {
		return nil, false, nil
	}
	var changed []event.Event
	more := false
	for ev, err := range n.read(context.Background(), txn, pl, g.Query, event.Desc) {
		if err != nil {
			return nil, false, err
		}
		if lamport.Compare(ev.Key(), g.After) <= 0 {
			break
		}
		if len(changed) == event.MaxConflictEvents {
			more = true
			break
		}
		changed = append(changed, *ev)
	}
	slices.Reverse(changed)
	return changed, more, nil
}

// putBooks adds to txn the bookkeeping of the requests of batch that were
// stored (out[i].err == nil): their key-value writes and idempotency
// records, so these commit with the events or not at all.
func (w *writer) putBooks(txn *badger.Txn, batch []*writeReq, out []writeRes) error {
	ttl := w.cfg.IdempotencyTTL
	if ttl == 0 {
		ttl = DefaultIdempotencyTTL
	}
	for i, req := range batch {
		b := req.book
		if b == nil || out[i].err != nil {
			continue
		}
		for _, op := range b.kv {
			var err error
			if op.del {
				err = txn.Delete(op.key)
			} else {
				err = txn.Set(op.key, op.val)
			}
			if err != nil {
				return err
			}
		}
		if b.idemKey == nil {
			continue
		}
		rec, err := event.MarshalCBOR(newIdemRecord(b.fingerprint, out[i].metas, w.now()))
		if err != nil {
			return err
		}
		e := badger.NewEntry(b.idemKey, rec)
		if ttl > 0 {
			e = e.WithTTL(ttl)
		}
		if err := txn.SetEntry(e); err != nil {
			return err
		}
	}
	return nil
}
