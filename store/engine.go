package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// Storage tunes the Badger database. Zero fields take the defaults.
type Storage struct {
	// MemTableSize is the size of one memtable (default: the profile's, 8,
	// 32 or 128 MiB). Smaller values lower memory use and the disk reserve
	// (MinFreeBytes); larger ones lower the CPU cost of storing, as Badger
	// flushes and compacts less often.
	MemTableSize int64 `yaml:"memTableSize"`
	// BlockCacheSize is the read cache (default 64 MiB).
	BlockCacheSize int64 `yaml:"blockCacheSize"`
	// NumCompactors is the number of compaction goroutines (default 2).
	NumCompactors int `yaml:"numCompactors"`
	// MinFreeBytes is the fixed part of the free disk space below which
	// writes are refused with ErrStorageFull (default: room for every
	// memtable's log twice, 6*MemTableSize, plus 32 MiB); half the
	// database's size is added to it. Badger maps
	// the files it writes into memory, and a write into a mapped file on a
	// full disk kills the process (SIGBUS), so the node stops accepting
	// events while flushes and compactions still have room.
	MinFreeBytes int64 `yaml:"minFreeBytes"`
	// Profile picks the presets for the zero fields above (profile.go):
	// ProfileAuto (the default) chooses ProfileLowMemory on 32-bit builds
	// and small machines, ProfileLarge on large ones, else ProfileDefault.
	Profile Profile `yaml:"profile"`
	// MaxDBBytes caps the database's size on disk; past it writes are
	// refused with ErrStorageFull. Default: DefaultMaxDBBytes32 on 32-bit
	// builds (Badger maps its files into the small address space), none
	// on 64-bit; -1 means no cap.
	MaxDBBytes int64 `yaml:"maxDBBytes"`
	// TrimInterval is how often the node hands back the resident pages of
	// the database files it has mapped and of its executable's code
	// (internal/memtrim): pages the kernel reclaims when memory runs short
	// anyway, but which count in the process's RSS until it does.
	// Default: every 500ms in ProfileLowMemory, never in the others;
	// negative: never.
	TrimInterval time.Duration `yaml:"trimInterval"`

	profileReason string // why Profile was chosen; set by resolve
	wordBits      int    // of the build; set by resolve
}

func (s Storage) withDefaults() Storage {
	if s.MemTableSize <= 0 {
		s.MemTableSize = 32 << 20
	}
	if s.BlockCacheSize <= 0 {
		s.BlockCacheSize = 64 << 20
	}
	if s.NumCompactors <= 0 {
		s.NumCompactors = 2
	}
	if s.MinFreeBytes <= 0 {
		s.MinFreeBytes = 2*numMemtables*s.MemTableSize + 32<<20
	}
	return s
}

// numMemtables is how many memtables Badger keeps (one being written, the
// rest waiting to be flushed); each has a log file of twice its size.
const numMemtables = 3

// engine owns the Badger database and the in-memory view of what it holds:
// the stream intern table and the highest offset present per stream.
type engine struct {
	// writeMu is held by the writer while it writes a batch and by a
	// drop of expired records (drop.go), which Badger runs with writes
	// refused.
	writeMu sync.Mutex
	// reads are the read transactions running (beginRead), by number.
	readMu   sync.Mutex
	reads    map[uint64]struct{}
	nextRead uint64

	db  *badger.DB
	log *slog.Logger
	// readOnly: the disk was too full to open the database for writing,
	// so it is open read-only (see openEngine); every write is refused.
	readOnly error

	mu      sync.RWMutex
	sids    map[event.StreamID]uint32
	names   []event.StreamID    // names[sid]; sid 0 is unused
	sidKeys []string            // sidKeys[sid]: the sid's 4 key bytes, for ordered merges
	present []int64             // present[sid]: highest offset, -1 if none
	heads   []*chain.SignedHead // heads[sid]: signed head at present, if any
	changed chan struct{}       // closed and replaced whenever present moves
	total   uint64              // events stored
	exp     expiryState         // floors, bytes, learned rules (prune.go)
}

func openEngine(cfg Config, log *slog.Logger) (*engine, uint64, error) {
	st := cfg.Storage
	opts := badger.DefaultOptions(filepath.Join(cfg.DataDir, "db")).
		WithLogger(badgerLogger{log}).
		WithSyncWrites(cfg.Durability == DurabilitySync).
		WithDetectConflicts(false).
		WithMemTableSize(st.MemTableSize).
		WithNumMemtables(numMemtables).
		WithBlockCacheSize(st.BlockCacheSize).
		WithNumCompactors(st.NumCompactors).
		WithCompression(options.Snappy).
		WithValueLogFileSize(256 << 20).
		// Values stay in the LSM tree (compacted, compressed, dropped by
		// deletes) unless they are large; Badger requires the threshold to
		// be below its batch size, which follows the memtable size.
		WithValueThreshold(min(1<<20, st.MemTableSize*15/100/2)).
		WithMetricsEnabled(false)
	opts = tuneBadger(opts, st)
	opts = tuneForExpiry(opts, cfg)
	var readOnly error
	if cfg.InMemory {
		opts = opts.WithDir("").WithValueDir("").WithInMemory(true)
	} else if free, need, err := openSpace(opts.Dir); err != nil {
		return nil, 0, err
	} else if free < need {
		full := fmt.Errorf("%w: %d bytes free on the data directory's disk; opening the database for writing needs at least %d", event.ErrStorageFull, free, need)
		if !hasDatabase(opts.Dir) {
			return nil, 0, fmt.Errorf("%w: free space and start again", full)
		}
		// A database that exists opens read-only: Badger creates no file
		// then; it serves what it holds and every write is refused.
		readOnly = fmt.Errorf("%w; the node is read-only until it is restarted with that space", full)
		opts = opts.WithReadOnly(true)
		log.Warn("the disk is full: the database is open read-only; queries and pulls by peers are served, writes refused", slog.Any("reason", full))
	}
	db, err := badger.Open(opts)
	if err != nil {
		if readOnly != nil {
			return nil, 0, fmt.Errorf("%w: a read-only open failed too: %v", readOnly, err)
		}
		return nil, 0, fmt.Errorf("open database: %w", err)
	}
	log.Info("storage profile", slog.String("profile", string(st.Profile)), slog.String("reason", st.profileReason),
		slog.Int64("memTableSize", st.MemTableSize), slog.Int64("blockCacheSize", st.BlockCacheSize), slog.Int64("maxDBBytes", st.MaxDBBytes))
	s := &engine{
		db:       db,
		log:      log,
		readOnly: readOnly,
		sids:     map[event.StreamID]uint32{},
		names:    []event.StreamID{""},
		sidKeys:  []string{""},
		present:  []int64{-1},
		heads:    []*chain.SignedHead{nil},
		changed:  make(chan struct{}),
	}
	clock, err := s.load()
	if err == nil {
		err = s.loadExpiry()
	}
	if err != nil {
		db.Close()
		return nil, 0, err
	}
	return s, clock, nil
}

// load reads the layout version, the intern table, each stream's highest
// offset and the persisted clock.
func (s *engine) load() (clock uint64, err error) {
	var version uint64
	err = s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(keyFormat)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			return txn.Set(keyFormat, u64(formatCurrent))
		case err != nil:
			return err
		}
		if err := item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("database layout version %x is not supported by this edgelog", v)
			}
			version = binary.BigEndian.Uint64(v)
			return nil
		}); err != nil {
			return err
		}
		if version < formatV1 || version > formatCurrent {
			why := ""
			if version > formatCurrent {
				why = ": a newer edgelog wrote it"
			}
			return fmt.Errorf("database layout version %d is not supported by this edgelog (it reads versions %d to %d)%s", version, formatV1, formatCurrent, why)
		}
		return nil
	})
	if err == nil && version != 0 && version < formatCurrent {
		if s.readOnly != nil {
			return 0, fmt.Errorf("%w; its layout (version %d) must be upgraded first, which needs that space", s.readOnly, version)
		}
		err = s.upgrade(version)
	}
	if err != nil {
		return 0, fmt.Errorf("open database: %w", err)
	}
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxName}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 5 {
				return fmt.Errorf("%w: name key %x", errBadKey, k)
			}
			sid := binary.BigEndian.Uint32(k[1:])
			if int(sid) != len(s.names) {
				return fmt.Errorf("stream table has a hole at %d", len(s.names))
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			s.addStream(event.StreamID(v))
		}
		it.Close()
		for sid := 1; sid < len(s.names); sid++ {
			r, ok, err := runBefore(txn, uint32(sid), ^uint64(0))
			if err != nil {
				return err
			}
			if ok {
				clock = max(clock, r.lamports[len(r.lamports)-1])
				s.present[sid] = int64(r.last())
				s.total += r.last() + 1
				if s.heads[sid], err = decodeRunHead(s.names[sid], r, r.head); err != nil {
					return err
				}
			}
		}
		stored, err := readU64(txn, keyLamport)
		// The clock is written with every batch; this guards against a
		// database written by something else.
		clock = max(clock, stored)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("open database: %w", err)
	}
	return clock, nil
}

func readU64(txn *badger.Txn, key []byte) (uint64, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var out uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: value of %q", errBadKey, key)
		}
		out = binary.BigEndian.Uint64(v)
		return nil
	})
	return out, err
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// addStream interns name; the caller holds mu or has exclusive access.
func (s *engine) addStream(name event.StreamID) uint32 {
	sid := uint32(len(s.names))
	sids := maps.Clone(s.sids) // copy on write: snapshots share the map
	sids[name] = sid
	s.sids = sids
	s.names = append(s.names, name)
	s.sidKeys = append(s.sidKeys, string(binary.BigEndian.AppendUint32(nil, sid)))
	s.present = append(s.present, -1)
	s.heads = append(s.heads, nil)
	return sid
}

// removeLastStream undoes addStream for a stream whose first write failed.
func (s *engine) removeLastStream() {
	last := len(s.names) - 1
	sids := maps.Clone(s.sids)
	delete(sids, s.names[last])
	s.sids = sids
	s.names = s.names[:last]
	s.sidKeys = s.sidKeys[:last]
	s.present = s.present[:last]
	s.heads = s.heads[:last]
}

// view is an immutable snapshot of the store's in-memory state.
type view struct {
	names   []event.StreamID
	sidKeys []string
	sids    map[event.StreamID]uint32
	present []int64
	total   uint64
	changed <-chan struct{}
}

// snapshot returns the current state. The slices are shared and must not be
// modified; they are only ever appended to or replaced under mu.
func (s *engine) snapshot() view {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return view{
		names:   s.names[:len(s.names):len(s.names)],
		sidKeys: s.sidKeys[:len(s.sidKeys):len(s.sidKeys)],
		sids:    s.sids,
		present: append([]int64(nil), s.present...),
		total:   s.total,
		changed: s.changed,
	}
}

// offsets returns v's present offsets as an OffsetMap.
func (v view) offsets() event.OffsetMap {
	m := make(event.OffsetMap, len(v.present))
	for sid, hi := range v.present {
		if hi >= 0 {
			m[v.names[sid]] = uint64(hi)
		}
	}
	return m
}

func (s *engine) close() error { return s.db.Close() }

// badgerLogger sends Badger's logs to slog, demoting its chatty info lines.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Debugf(f string, a ...any)   {}
