package store

import (
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/edgelog/edgelog/internal/memtrim"
)

// trimmer hands back, every Storage.TrimInterval until the node closes,
// the resident pages of the database's mapped files and of the
// executable's code (see internal/memtrim): Badger writes every table
// through a memory map and keeps it mapped, so without this the node's
// RSS grows with the database even though the kernel could reclaim those
// pages at any time.
func (n *Store) trimmer(every time.Duration) {
	sel := trimSelector(n.cfg.DataDir)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if _, err := memtrim.Trim(sel); err != nil {
			n.log.Info("not trimming resident memory", slog.Any("err", err))
			return
		}
		select {
		case <-n.closing:
			return
		case <-tick.C:
		}
	}
}

// trimSelector picks the database's files under dataDir and the running
// executable.
func trimSelector(dataDir string) memtrim.Selector {
	sel := memtrim.Selector{Dirs: []string{filepath.Join(dataDir, "db")}}
	if exe, err := os.Executable(); err == nil {
		if p, err := filepath.EvalSymlinks(exe); err == nil {
			exe = p
		}
		sel.Files = []string{exe}
	}
	return sel
}
