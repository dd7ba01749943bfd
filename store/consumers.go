package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

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
