package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/event"
)

// The key-value store: small values in namespaces, in Badger next to the
// events and written by the group-commit writer, so they are as durable as
// events. Idempotency records (book.go) and consumer status (consumers.go)
// live in reserved namespaces of the same space (keys.go).

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
