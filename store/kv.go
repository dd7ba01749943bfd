package store

import (
	"bytes"
	"cmp"
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

// Node-side bookkeeping: a small key-value store, idempotency records and
// the status of durable consumers, all in Badger next to the events and
// written by the group-commit writer, so they are as durable as events and
// (for idempotency records) atomic with them.
//
//	k <namespace> 0x00 <key>  -> value
//
// Namespaces starting with "edgelog." are the node's own:
//
//	edgelog.idem     <appId> 0x00 <idempotency key> -> idemRecord (CBOR), with a TTL
//	edgelog.consumer <appId> 0x00 <consumer name>   -> consumerRecord (CBOR)
const pfxKV = 'k'

// Limits of the key-value store.
const (
	MaxKVNamespaceLen = 64
	MaxKVKeyLen       = 1024
	MaxKVValueLen     = 64 << 10
	// DefaultIdempotencyTTL is how long idempotency keys are kept when
	// Config.IdempotencyTTL is zero.
	DefaultIdempotencyTTL = 7 * 24 * time.Hour
	// maxConsumersListed bounds the consumers Info reports.
	maxConsumersListed = 1024
)

const (
	reservedNS    = "edgelog."
	nsIdempotency = reservedNS + "idem"
	nsConsumer    = reservedNS + "consumer"
)

func kvKey(ns, key string) []byte {
	b := make([]byte, 0, 2+len(ns)+len(key))
	b = append(b, pfxKV)
	b = append(b, ns...)
	b = append(b, 0)
	return append(b, key...)
}

func checkKV(ns, key string) error {
	switch {
	case ns == "" || len(ns) > MaxKVNamespaceLen || strings.IndexByte(ns, 0) >= 0:
		return fmt.Errorf("%w: kv namespace %.64q: want 1..%d bytes without NUL", event.ErrInvalid, ns, MaxKVNamespaceLen)
	case key == "" || len(key) > MaxKVKeyLen:
		return fmt.Errorf("%w: kv key: want 1..%d bytes", event.ErrInvalid, MaxKVKeyLen)
	}
	return nil
}

// KVGet returns the value of key in namespace ns and whether it exists.
func (n *Store) KVGet(ctx context.Context, ns, key string) ([]byte, bool, error) {
	if err := checkKV(ns, key); err != nil {
		return nil, false, fmt.Errorf("kv get: %w", err)
	}
	return n.kvGet(ctx, kvKey(ns, key))
}

// KVPut sets key in namespace ns to val (at most MaxKVValueLen bytes),
// through the writer: it is durable when KVPut returns, like a publish.
// Namespaces starting with "edgelog." are reserved for the node.
func (n *Store) KVPut(ctx context.Context, ns, key string, val []byte) error {
	if err := n.checkUserKV(ns, key); err != nil {
		return fmt.Errorf("kv put: %w", err)
	}
	if len(val) > MaxKVValueLen {
		return fmt.Errorf("kv put: %w: value of %d bytes, at most %d", event.ErrTooLarge, len(val), MaxKVValueLen)
	}
	return n.writeKV(ctx, kvOp{key: kvKey(ns, key), val: slices.Clone(val)})
}

// KVDelete removes key from namespace ns; removing a missing key is no
// error.
func (n *Store) KVDelete(ctx context.Context, ns, key string) error {
	if err := n.checkUserKV(ns, key); err != nil {
		return fmt.Errorf("kv delete: %w", err)
	}
	return n.writeKV(ctx, kvOp{key: kvKey(ns, key), del: true})
}

func (n *Store) checkUserKV(ns, key string) error {
	if err := checkKV(ns, key); err != nil {
		return err
	}
	if strings.HasPrefix(ns, reservedNS) {
		return fmt.Errorf("%w: kv namespace %q is reserved for the node", event.ErrInvalid, ns)
	}
	return nil
}

func (n *Store) kvGet(ctx context.Context, k []byte) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	done, err := n.enter()
	if err != nil {
		return nil, false, err
	}
	defer done()
	var val []byte
	err = n.st.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, storageError("kv get", err)
	}
	return val, true, nil
}

// writeKV stores ops in one transaction through the writer.
func (n *Store) writeKV(ctx context.Context, ops ...kvOp) error {
	req := &writeReq{stream: n.DefaultStream(), book: &book{kv: ops}}
	if err := n.w.estimate(req); err != nil {
		return err
	}
	_, err := n.w.submit(ctx, req)
	return err
}

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

// consumerRecord is what the node keeps per consumer.
type consumerRecord struct {
	Name       string          `cbor:"1,keyasint"`
	AppID      string          `cbor:"2,keyasint"`
	Checkpoint event.OffsetMap `cbor:"3,keyasint"`
	Blocked    []blockedRecord `cbor:"4,keyasint"`
	Running    bool            `cbor:"5,keyasint"`
	Updated    int64           `cbor:"6,keyasint"` // unix microseconds
}

type blockedRecord struct {
	Stream   event.StreamID `cbor:"1,keyasint"`
	Lamport  uint64         `cbor:"2,keyasint"`
	Offset   uint64         `cbor:"3,keyasint"`
	Attempts int            `cbor:"4,keyasint"`
	Error    string         `cbor:"5,keyasint"`
}

func consumerKey(appID, name string) []byte {
	return kvKey(nsConsumer, appID+"\x00"+name)
}

// PutConsumer stores what the consumer s.Name of app appID reports about
// itself (replacing its previous report), durably, through the writer.
// AppID and Updated are set by the node.
func (n *Store) PutConsumer(ctx context.Context, appID string, s event.ConsumerStatus) error {
	if appID == "" || strings.IndexByte(appID, 0) >= 0 {
		return fmt.Errorf("put consumer: %w: app id is empty or contains NUL", event.ErrInvalid)
	}
	if err := event.ValidateConsumerStatus(&s); err != nil {
		return fmt.Errorf("put consumer: %w", err)
	}
	rec := consumerRecord{Name: s.Name, AppID: appID, Checkpoint: s.Checkpoint, Running: s.Running, Updated: time.Now().UnixMicro()}
	for _, bl := range s.Blocked {
		rec.Blocked = append(rec.Blocked, blockedRecord{Stream: bl.Stream, Lamport: bl.Event.Lamport, Offset: bl.Event.Offset, Attempts: bl.Attempts, Error: bl.Error})
	}
	val, err := event.MarshalCBOR(rec)
	if err != nil {
		return fmt.Errorf("put consumer: %w", err)
	}
	if len(val) > 4*MaxKVValueLen {
		return fmt.Errorf("put consumer: %w: status of %d bytes", event.ErrTooLarge, len(val))
	}
	return n.writeKV(ctx, kvOp{key: consumerKey(appID, s.Name), val: val})
}

// Consumer returns what consumer name of app appID last reported.
func (n *Store) Consumer(ctx context.Context, appID, name string) (event.ConsumerStatus, bool, error) {
	if name == "" || strings.IndexByte(name, 0) >= 0 || strings.IndexByte(appID, 0) >= 0 {
		return event.ConsumerStatus{}, false, fmt.Errorf("consumer: %w: empty name, or NUL in name or app id", event.ErrInvalid)
	}
	val, ok, err := n.kvGet(ctx, consumerKey(appID, name))
	if err != nil || !ok {
		return event.ConsumerStatus{}, false, err
	}
	s, err := decodeConsumer(val)
	if err != nil {
		return event.ConsumerStatus{}, false, fmt.Errorf("consumer %s: %w", name, err)
	}
	return s, true, nil
}

// Consumers returns what every consumer last reported (at most 1024),
// ordered by app and name.
func (n *Store) Consumers(ctx context.Context) ([]event.ConsumerStatus, error) {
	done, err := n.enter()
	if err != nil {
		return nil, err
	}
	defer done()
	var out []event.ConsumerStatus
	pfx := kvKey(nsConsumer, "")
	err = n.st.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(out) < maxConsumersListed; it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var s event.ConsumerStatus
			err := it.Item().Value(func(v []byte) (err error) {
				s, err = decodeConsumer(v)
				return err
			})
			if err != nil {
				n.log.Warn("skipping an undecodable consumer status", "key", string(it.Item().Key()[len(pfx):]), "err", err)
				continue
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, storageError("consumers", err)
	}
	slices.SortFunc(out, func(a, b event.ConsumerStatus) int {
		return cmp.Or(strings.Compare(a.AppID, b.AppID), strings.Compare(a.Name, b.Name))
	})
	return out, nil
}

func decodeConsumer(v []byte) (event.ConsumerStatus, error) {
	var rec consumerRecord
	if err := event.UnmarshalCBOR(v, &rec); err != nil {
		return event.ConsumerStatus{}, err
	}
	s := event.ConsumerStatus{
		Name: rec.Name, AppID: rec.AppID, Checkpoint: rec.Checkpoint, Running: rec.Running,
		Updated: time.UnixMicro(rec.Updated).UTC(), Blocked: []event.BlockedStream{},
	}
	if s.Checkpoint == nil {
		s.Checkpoint = event.OffsetMap{}
	}
	for _, b := range rec.Blocked {
		s.Blocked = append(s.Blocked, event.BlockedStream{
			Stream:   b.Stream,
			Event:    lamport.EventKey{Lamport: b.Lamport, Stream: string(b.Stream), Offset: b.Offset},
			Attempts: b.Attempts,
			Error:    b.Error,
		})
	}
	return s, nil
}
