package store

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgelog/edgelog/event"
)

// openMargin is the free space opening the database needs besides its
// logs: Badger writes its lock file and manifest at once, and the store
// writes its first keys into a fresh memtable.
const openMargin = 16 << 20

// checkOpenSpace refuses to open the database in dir on a disk too full
// to open it safely. Badger replays its memtable logs through memory maps
// and flushes them into tables written through memory maps; on a full
// disk a page it cannot allocate (a table page, or on tmpfs even a hole
// of a log it reads) is not an error but SIGBUS, which kills the process.
// So opening needs room for the logs' data once more (their tables) plus
// openMargin; below that, Open fails with event.ErrStorageFull and a
// message saying how much to free, and nothing stored is touched.
func checkOpenSpace(dir string) error {
	logs, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil {
		return err
	}
	var replay int64
	for _, p := range logs {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("open database: %w", err)
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
	free, err := freeBytes(at)
	if err != nil {
		return fmt.Errorf("open database: free space of %s: %w", dir, err)
	}
	if need := replay + openMargin; free < need {
		return fmt.Errorf("%w: %d bytes free on the data directory's disk; opening the database needs at least %d (%d bytes of logs to replay into tables, and %d to start): free space and start again",
			event.ErrStorageFull, free, need, replay, openMargin)
	}
	return nil
}
