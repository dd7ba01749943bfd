package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Space reclamation: Badger drops deleted keys only when a compaction
// carries their tombstones down to the data, which with a steady write rate
// can take long, and the tables of a pruned stream then hold several times
// what it keeps (docs/storage.md). So every PruneInterval, if the tables hold more than reclaimFactor times
// the events kept plus reclaimSlack, the pruner merges them (Compact).
const (
	reclaimFactor = 1.25
	reclaimSlack  = 8 << 20
)

// tuneForExpiry makes Badger's compactions smaller and more frequent when
// a stream is bounded by size: fewer level-0 tables and smaller tables, so
// deletes reach the data sooner and a compaction rewrites less at once (a
// compaction writes its new tables before it deletes the old ones), which
// keeps the data directory's peaks closer to the limit (docs/soak.md).
func tuneForExpiry(opts badger.Options, cfg Config) badger.Options {
	for _, r := range cfg.Streams {
		if r.MaxBytes > 0 {
			return opts.WithNumLevelZeroTables(min(opts.NumLevelZeroTables, 3)).
				WithNumLevelZeroTablesStall(max(opts.NumLevelZeroTablesStall, 8)).
				WithBaseTableSize(min(opts.BaseTableSize, 512<<10))
		}
	}
	return opts
}

// expires reports whether some stream held has a retention rule.
func (n *Store) expires() bool {
	if len(n.routing.rules) > 0 {
		return true
	}
	for _, e := range n.st.exp.all() {
		if e.hasRule && !e.rule.Forever() {
			return true
		}
	}
	return false
}

// reclaim gives back the space of pruned events: it collects the value
// log (values of large events) and compacts the tables when they hold much
// more than the events kept (see reclaimFactor).
func (n *Store) reclaim(ctx context.Context, pruned int64) {
	if n.cfg.InMemory {
		return
	}
	for range 4 {
		if n.st.db.RunValueLogGC(0.5) != nil {
			break
		}
	}
	var tables, kept int64
	for _, t := range n.st.db.Tables() {
		tables += int64(t.OnDiskSize)
	}
	for _, e := range n.st.exp.all() {
		kept += e.bytes
	}
	if float64(tables) <= reclaimFactor*float64(kept)+reclaimSlack {
		return
	}
	start := time.Now()
	if err := n.Compact(ctx); err != nil {
		if ctx.Err() == nil {
			n.log.Warn("compacting after pruning", slog.Any("err", err))
		}
		return
	}
	after := int64(0)
	for _, t := range n.st.db.Tables() {
		after += int64(t.OnDiskSize)
	}
	n.log.Info("compacted the database after pruning", slog.Int64("prunedBytes", pruned), slog.Int64("tablesBefore", tables),
		slog.Int64("tablesAfter", after), slog.Duration("took", time.Since(start)))
}

// Compact reclaims the space of deleted keys (expired events' index
// entries, replaced bookkeeping) now, instead of as Badger's compactions get
// to it: it merges the database's tables down to one level, which drops
// them, and collects the value log. Expired records are not its business:
// the pruner drops them in ranges (drop.go). It blocks writes to the tables
// while it runs; the node calls it by itself only in small doses (see
// reclaim).
func (n *Store) Compact(ctx context.Context) error {
	if n.st.readOnly != nil {
		return fmt.Errorf("compact: %w", n.st.readOnly)
	}
	done, err := n.enter()
	if err != nil {
		return err
	}
	defer done()
	n.compactMu.Lock()
	defer n.compactMu.Unlock()
	if n.cfg.InMemory {
		return nil
	}
	if err := n.st.db.Flatten(max(1, n.cfg.Storage.NumCompactors)); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	for ctx.Err() == nil && n.st.db.RunValueLogGC(0.5) == nil {
	}
	return ctx.Err()
}
