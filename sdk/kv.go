package sdk

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// KV is a small durable key-value store for the SDK's bookkeeping:
// idempotency keys ("idem/<key>") and consumer checkpoints
// ("consumer/<name>").
//
// The node is meant to provide it (so that the bookkeeping lives next to the
// events, is atomic with publishing, and is visible in node info); until it
// does, Open keeps a FileKV in <dir>/sdk/kv and Dial one in WithDataDir's
// directory, or a MemKV without one. Implementations must be safe for
// concurrent use; a Put that returned nil survives a crash. Returned slices
// belong to the caller.
type KV interface {
	// Get returns the value of key and whether it exists.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Put sets the value of key, replacing any previous value.
	Put(ctx context.Context, key string, val []byte) error
}

// FileKV is a KV with one file per key in a directory. A Put writes a
// temporary file, syncs it and renames it over the old one, so a crash
// leaves either the old or the new value.
type FileKV struct{ dir string }

var _ KV = (*FileKV)(nil)

// NewFileKV returns a FileKV in dir, creating dir if needed.
func NewFileKV(dir string) (*FileKV, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sdk: file kv: %w", err)
	}
	return &FileKV{dir: dir}, nil
}

func (k *FileKV) path(key string) string {
	return filepath.Join(k.dir, hex.EncodeToString([]byte(key)))
}

// Get returns the value of key.
func (k *FileKV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	b, err := os.ReadFile(k.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("sdk: file kv: get %q: %w", key, err)
	}
	return b, true, nil
}

// Put sets the value of key atomically and durably.
func (k *FileKV) Put(ctx context.Context, key string, val []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := writeFileAtomic(k.path(key), val); err != nil {
		return fmt.Errorf("sdk: file kv: put %q: %w", key, err)
	}
	return nil
}

// writeFileAtomic replaces path with data: temp file, fsync, rename, fsync
// of the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// MemKV is a KV in memory, for tests and for a Remote without a data
// directory. Its contents are lost with the process.
type MemKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

var _ KV = (*MemKV)(nil)

// NewMemKV returns an empty MemKV.
func NewMemKV() *MemKV { return &MemKV{m: map[string][]byte{}} }

// Get returns the value of key.
func (k *MemKV) Get(_ context.Context, key string) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[key]
	return slices.Clone(v), ok, nil
}

// Put sets the value of key.
func (k *MemKV) Put(_ context.Context, key string, val []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[key] = slices.Clone(val)
	return nil
}

// Keys returns the keys with prefix, sorted (for tests and tools).
func (k *MemKV) Keys(prefix string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, key := range slices.Sorted(maps.Keys(k.m)) {
		if strings.HasPrefix(key, prefix) {
			out = append(out, key)
		}
	}
	return out
}

// extras is the state of the SDK-side features shared by Embedded and
// Remote: the KV, the write lock of guarded publishing and the per-key locks
// of idempotent publishing.
type extras struct {
	kv    KV
	snaps SnapshotStore
	// writeMu is held shared by every publish through this value and
	// exclusively by PublishIf between its check and its write.
	writeMu sync.RWMutex

	keysMu sync.Mutex
	keys   map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func newExtras(kv KV, snaps SnapshotStore) *extras {
	return &extras{kv: kv, snaps: snaps, keys: map[string]*keyLock{}}
}

// lockKey serializes callers using the same key; the returned func unlocks.
func (x *extras) lockKey(key string) func() {
	x.keysMu.Lock()
	l := x.keys[key]
	if l == nil {
		l = &keyLock{}
		x.keys[key] = l
	}
	l.refs++
	x.keysMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		x.keysMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(x.keys, key)
		}
		x.keysMu.Unlock()
	}
}

// localStores returns the extras with the KV and snapshot store of o, or
// file-based ones in dir (in memory without a dir).
func localStores(o options, dir string, onDisk bool) (*extras, error) {
	kv, snaps := o.kv, o.snapshots
	var err error
	if kv == nil {
		if !onDisk {
			kv = NewMemKV()
		} else if kv, err = NewFileKV(filepath.Join(dir, "kv")); err != nil {
			return nil, err
		}
	}
	if snaps == nil {
		if !onDisk {
			snaps = NewMemSnapshotStore()
		} else if snaps, err = NewFileSnapshotStore(filepath.Join(dir, "snapshots")); err != nil {
			return nil, err
		}
	}
	return newExtras(kv, snaps), nil
}
