package memtrim

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// noPageOut is set once the kernel refused MADV_PAGEOUT (before Linux 5.4).
var noPageOut atomic.Bool

// Trim advises away the resident pages of this process's mappings that s
// selects and returns how many resident bytes they held.
func Trim(s Selector) (uint64, error) {
	mappings, err := Mappings()
	if err != nil {
		return 0, err
	}
	var trimmed uint64
	for _, m := range mappings {
		var advice int
		switch s.Select(m) {
		case DontNeed:
			advice = unix.MADV_DONTNEED
		case PageOut:
			if noPageOut.Load() {
				continue
			}
			advice = unix.MADV_PAGEOUT
		default:
			continue
		}
		_, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), uintptr(advice))
		switch {
		case e == 0:
			trimmed += m.Rss
		case advice == unix.MADV_PAGEOUT && errors.Is(e, unix.EINVAL):
			noPageOut.Store(true)
		}
		// ENOMEM: the mapping is gone (Badger closed a table); fine.
	}
	return trimmed, nil
}

// Mappings returns this process's mappings that Trim may advise: those of
// /proc/self/smaps that /proc/self/maps confirms (see Confirmed). It
// returns ErrUnconfirmed if maps confirms none.
func Mappings() ([]Mapping, error) {
	smaps, err := readMappings("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	maps, err := readMappings("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	return Confirmed(smaps, maps)
}

func readMappings(path string) ([]Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	return ParseSmaps(f)
}
