package sdk

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/internal/atomicfile"
	"github.com/edgelog/edgelog/lamport"
)

// Snapshot is an aggregate's state after folding in every selected event up
// to Offsets, the last of them (in EventKey order) being Key.
type Snapshot struct {
	Name    string    `cbor:"1,keyasint"`
	Version int       `cbor:"2,keyasint"` // reducer version
	Key     EventKey  `cbor:"3,keyasint"`
	Offsets OffsetMap `cbor:"4,keyasint"`
	State   []byte    `cbor:"5,keyasint"` // CBOR
}

// SnapshotStore keeps aggregate snapshots, keyed by aggregate name, reducer
// version and the EventKey they cover. Implementations must be safe for
// concurrent use.
type SnapshotStore interface {
	// Save stores s. It may drop older snapshots of the same name and
	// version, and must drop (or stop returning) those of other versions:
	// a new reducer version invalidates them.
	Save(ctx context.Context, s Snapshot) error
	// Latest returns the snapshot of name and version with the greatest Key,
	// considering only keys before *before when before is not nil.
	Latest(ctx context.Context, name string, version int, before *EventKey) (Snapshot, bool, error)
	// Invalidate drops the snapshots of name whose Key is at or after from:
	// an event older than them arrived, so they miss it.
	Invalidate(ctx context.Context, name string, from EventKey) error
}

// snapshotsKept is how many snapshots per aggregate the stores keep: a few,
// so that time travel can fall back to an older one.
const snapshotsKept = 4

// MemSnapshotStore is a SnapshotStore in memory.
type MemSnapshotStore struct {
	mu sync.Mutex
	m  map[string][]Snapshot // by name, ascending Key
}

var _ SnapshotStore = (*MemSnapshotStore)(nil)

// NewMemSnapshotStore returns an empty MemSnapshotStore.
func NewMemSnapshotStore() *MemSnapshotStore { return &MemSnapshotStore{m: map[string][]Snapshot{}} }

// Save stores s, keeping the last few snapshots of its version.
func (m *MemSnapshotStore) Save(_ context.Context, s Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := slices.DeleteFunc(m.m[s.Name], func(o Snapshot) bool {
		return o.Version != s.Version || o.Key == s.Key
	})
	list = append(list, s)
	slices.SortFunc(list, func(a, b Snapshot) int { return lamport.Compare(a.Key, b.Key) })
	if len(list) > snapshotsKept {
		list = list[len(list)-snapshotsKept:]
	}
	m.m[s.Name] = list
	return nil
}

// Latest returns the newest matching snapshot.
func (m *MemSnapshotStore) Latest(_ context.Context, name string, version int, before *EventKey) (Snapshot, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := m.m[name]
	for i := len(list) - 1; i >= 0; i-- {
		s := list[i]
		if s.Version == version && (before == nil || s.Key.Less(*before)) {
			return s, true, nil
		}
	}
	return Snapshot{}, false, nil
}

// Invalidate drops the snapshots of name at or after from.
func (m *MemSnapshotStore) Invalidate(_ context.Context, name string, from EventKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[name] = slices.DeleteFunc(m.m[name], func(s Snapshot) bool { return !s.Key.Less(from) })
	return nil
}

// FileSnapshotStore is a SnapshotStore in a directory: one subdirectory per
// aggregate, one CBOR file per snapshot, written atomically.
type FileSnapshotStore struct {
	dir string
	mu  sync.Mutex
}

var _ SnapshotStore = (*FileSnapshotStore)(nil)

// NewFileSnapshotStore returns a FileSnapshotStore in dir, creating it.
func NewFileSnapshotStore(dir string) (*FileSnapshotStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sdk: snapshot store: %w", err)
	}
	return &FileSnapshotStore{dir: dir}, nil
}

// snapName is the file name of a snapshot: version, then the key with
// fixed-width numbers.
func snapName(version int, k EventKey) string {
	return fmt.Sprintf("v%d_%020d_%s_%020d.snap", version, k.Lamport, hex.EncodeToString([]byte(k.Stream)), k.Offset)
}

func parseSnapName(name string) (version int, k EventKey, ok bool) {
	parts := strings.Split(strings.TrimSuffix(name, ".snap"), "_")
	if len(parts) != 4 || !strings.HasPrefix(parts[0], "v") || !strings.HasSuffix(name, ".snap") {
		return 0, k, false
	}
	v, err1 := strconv.Atoi(parts[0][1:])
	l, err2 := strconv.ParseUint(parts[1], 10, 64)
	s, err3 := hex.DecodeString(parts[2])
	o, err4 := strconv.ParseUint(parts[3], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return 0, k, false
	}
	return v, EventKey{Lamport: l, Stream: string(s), Offset: o}, true
}

type snapFile struct {
	path    string
	version int
	key     EventKey
}

func (f *FileSnapshotStore) list(name string) (string, []snapFile, error) {
	dir := filepath.Join(f.dir, hex.EncodeToString([]byte(name)))
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return dir, nil, nil
	}
	if err != nil {
		return dir, nil, err
	}
	var out []snapFile
	for _, e := range ents {
		if v, k, ok := parseSnapName(e.Name()); ok {
			out = append(out, snapFile{filepath.Join(dir, e.Name()), v, k})
		}
	}
	slices.SortFunc(out, func(a, b snapFile) int { return lamport.Compare(a.key, b.key) })
	return dir, out, nil
}

// Save writes s and removes snapshots of other versions and all but the
// last few of its own.
func (f *FileSnapshotStore) Save(ctx context.Context, s Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := event.MarshalCBOR(s)
	if err != nil {
		return fmt.Errorf("sdk: snapshot store: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := filepath.Join(f.dir, hex.EncodeToString([]byte(s.Name)))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sdk: snapshot store: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, snapName(s.Version, s.Key)), data, 0o600); err != nil {
		return fmt.Errorf("sdk: snapshot store: save %s: %w", s.Name, err)
	}
	_, files, err := f.list(s.Name)
	if err != nil {
		return fmt.Errorf("sdk: snapshot store: %w", err)
	}
	same := 0
	for i := len(files) - 1; i >= 0; i-- {
		if files[i].version == s.Version {
			if same++; same <= snapshotsKept {
				continue
			}
		}
		_ = os.Remove(files[i].path)
	}
	return nil
}

// Latest reads the newest matching snapshot. Unreadable files are skipped.
func (f *FileSnapshotStore) Latest(ctx context.Context, name string, version int, before *EventKey) (Snapshot, bool, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, files, err := f.list(name)
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("sdk: snapshot store: %w", err)
	}
	for i := len(files) - 1; i >= 0; i-- {
		sf := files[i]
		if sf.version != version || (before != nil && !sf.key.Less(*before)) {
			continue
		}
		data, err := os.ReadFile(sf.path)
		if err != nil {
			continue
		}
		var s Snapshot
		if event.UnmarshalCBOR(data, &s) != nil || s.Key != sf.key || s.Name != name {
			continue
		}
		return s, true, nil
	}
	return Snapshot{}, false, nil
}

// Invalidate removes the snapshot files of name at or after from.
func (f *FileSnapshotStore) Invalidate(ctx context.Context, name string, from EventKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, files, err := f.list(name)
	if err != nil {
		return fmt.Errorf("sdk: snapshot store: %w", err)
	}
	for _, sf := range files {
		if !sf.key.Less(from) {
			if err := os.Remove(sf.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("sdk: snapshot store: %w", err)
			}
		}
	}
	return nil
}
