package store

import (
	"fmt"
	"os"
	"path/filepath"
)

// openMargin is the free space opening the database needs besides its
// logs: Badger writes its lock file and manifest at once, and the store
// writes its first keys into a fresh memtable.
const openMargin = 16 << 20

// openSpace returns the free space of the disk holding the database in
// dir and what opening it for writing needs. Badger replays its memtable
// logs and flushes them into tables; on a disk that cannot hold those, a
// write it cannot make is an error at best (third_party/PATCHES.md) and
// was a SIGBUS. So opening for writing needs room for the logs' data once
// more (their tables) plus openMargin.
func openSpace(dir string) (free, need int64, err error) {
	logs, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil {
		return 0, 0, err
	}
	var replay int64
	for _, p := range logs {
		fi, err := os.Stat(p)
		if err != nil {
			return 0, 0, fmt.Errorf("open database: %w", err)
		}
		replay += allocatedBytes(fi)
	}
	// The nearest directory that exists: on first start dir is not there.
	at := dir
	for {
		if _, err := os.Stat(at); err == nil || filepath.Dir(at) == at {
			break
		}
		at = filepath.Dir(at)
	}
	if free, err = freeBytes(at); err != nil {
		return 0, 0, fmt.Errorf("open database: free space of %s: %w", dir, err)
	}
	return free, replay + openMargin, nil
}

// hasDatabase reports whether dir holds a Badger database (its manifest).
func hasDatabase(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "MANIFEST"))
	return err == nil
}
