package store

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Expired records are removed in bulk, not key by key. Pruning raises a
// stream's floor and deletes the expired events' tag and stream index
// entries (small) in one transaction; their records stay, unreadable below
// the floor, until dropExpired hands whole ranges of record keys to
// Badger's DropPrefix, which deletes tables that hold only such keys and
// rewrites the few that straddle a range's ends.
//
// Deleting each record instead wrote a tombstone at the old end of the
// stream's keys while new records arrived at the other end. Badger flushes
// both into one level-0 table, and compacting that table rewrote every
// table in between, the whole retained stream, before deleting the old
// ones, so the directory peaked far above its limit (docs/soak.md).
//
// Record blocks are keyed by (stream, first offset) and never cross a
// multiple of dropAlign (block.go), so a range of offsets aligned to
// dropAlign is a key prefix. dropAlign - 1 expired events per stream may
// wait for the next range.
const (
	dropAlign = 256
	// dropShare: a drop is due once the bytes of expired records still
	// stored reach 1/dropShare of the bytes kept, and at least
	// dropMinBytes, or at every reclaim (PruneInterval).
	dropShare    = 16
	dropMinBytes = 1 << 20
	// dropMinInterval spaces drops: each blocks the writer while Badger
	// flushes the memtable and compacts level 0.
	dropMinInterval = 2 * time.Second
	// dropReadGrace bounds how long a planned drop waits for reads that
	// began before it: a subscriber that stopped reading must not keep
	// the disk from shrinking. Such a read may then fail on an expired
	// event it was about to load.
	dropReadGrace = time.Minute
)

// dropDue reports whether a drop is due with undropped bytes of expired
// records stored, kept bytes of live events, and the last drop since ago.
func dropDue(undropped, kept int64, since time.Duration) bool {
	return since >= dropMinInterval && undropped >= max(dropMinBytes, kept/dropShare)
}

// eventRangePrefixes returns key prefixes that together cover exactly the
// record keys of sid with offsets in [from, to). Both must be multiples of
// dropAlign. Each prefix covers an aligned block of 256^k offsets, the
// largest that fits, so a range of n offsets needs at most about
// 2 * 255 * log256(n) prefixes.
func eventRangePrefixes(sid uint32, from, to uint64) [][]byte {
	if from%dropAlign != 0 || to%dropAlign != 0 {
		panic(fmt.Sprintf("eventRangePrefixes: unaligned range [%d, %d)", from, to))
	}
	var out [][]byte
	for from < to {
		// k bytes of the offset are left out of the prefix: it covers
		// 256^k offsets.
		k := 1
		for k < 7 {
			size := uint64(1) << (8 * (k + 1))
			if from%size != 0 || to-from < size {
				break
			}
			k++
		}
		key := blockKey(sid, from)
		out = append(out, key[:len(key)-k])
		from += 1 << (8 * k)
	}
	return out
}

// firstStored returns where sid's next drop of records starts: its first
// stored record's offset, aligned down to dropAlign, or floor's if it has
// none below floor.
func firstStored(txn *badger.Txn, sid uint32, floor uint64) (uint64, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: eventPrefix(sid)})
	defer it.Close()
	it.Rewind()
	first := floor
	if it.Valid() {
		_, off, err := decodeBlockKey(it.Item().Key())
		if err != nil {
			return 0, err
		}
		first = min(first, off)
	}
	return first &^ (dropAlign - 1), nil
}

// dropper is the pruner's state of record drops. A drop waits for the
// reads that began before it was planned (see store.beginRead): their
// transactions may still read records the drop removes, which Badger's
// DropPrefix takes away from every snapshot at once.
type dropper struct {
	planned  map[uint32]uint64 // per stream, drop records below this offset
	bytes    int64             // undropped bytes when planned
	readMark uint64            // reads numbered below it must end first
	at       time.Time         // when the drop was planned
	last     time.Time         // the last drop
}

// dropExpired plans a drop of the records below the streams' floors if one
// is due (or force is set, or the writer refused a batch for lack of space,
// and there are any), and carries out a planned drop once the reads that
// began before its plan have ended. It runs on the pruner's goroutine.
func (n *Store) dropExpired(force bool) {
	if n.w.spaceShort.Swap(false) {
		force = true
	}
	d := &n.drops
	if d.planned == nil {
		undropped := n.undropped.Load()
		exps := n.st.exp.all()
		var kept int64
		for _, e := range exps {
			kept += e.bytes
		}
		if !force && !dropDue(undropped, kept, time.Since(d.last)) {
			return
		}
		plan := map[uint32]uint64{}
		for sid, e := range exps {
			if to := e.floor &^ (dropAlign - 1); to > e.dropped {
				plan[sid] = to
			}
		}
		if len(plan) == 0 {
			return
		}
		d.planned, d.bytes, d.readMark, d.at = plan, undropped, n.st.readMark(), time.Now()
	}
	if n.st.oldestRead() < d.readMark && time.Since(d.at) < dropReadGrace {
		n.dropWaits.Add(1)
		return // a read that may see the planned records is still running
	}
	plan := d.planned
	d.planned = nil
	if err := n.dropRecords(plan); err != nil {
		n.log.Warn("dropping expired records", slog.Any("err", err))
		return
	}
	n.undropped.Add(-d.bytes)
	d.last = time.Now()
}

// dropRecords removes the records of each stream in plan from its last
// drop up to the planned offset. Writes wait meanwhile: Badger refuses
// them during DropPrefix.
func (n *Store) dropRecords(plan map[uint32]uint64) error {
	var prefixes [][]byte
	exps := n.st.exp.all()
	for sid, to := range plan {
		prefixes = append(prefixes, eventRangePrefixes(sid, exps[sid].dropped, to)...)
	}
	n.compactMu.Lock()
	n.st.writeMu.Lock()
	start := time.Now() // writes wait from here
	err := n.st.db.DropPrefix(prefixes...)
	n.st.writeMu.Unlock()
	n.compactMu.Unlock()
	if err != nil {
		return fmt.Errorf("drop %d ranges of records: %w", len(prefixes), err)
	}
	for sid, to := range plan {
		n.st.exp.update(sid, func(e *streamExp) { e.dropped = max(e.dropped, to) })
	}
	n.log.Debug("dropped expired records", slog.Int("streams", len(plan)), slog.Int("ranges", len(prefixes)), slog.Duration("took", time.Since(start)))
	return nil
}
