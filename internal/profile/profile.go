// Package profile sets the Go runtime up for a node's storage profile
// (store.Profile): the memory limit, the collector's GOGC and transparent
// huge pages for the heap. These are settings of the whole process, which a
// library must not change behind its program's back, so only programs that
// run a node call Prepare (the edgelog CLI, before it opens the node).
package profile

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/edgelog/edgelog/internal/hugeheap"
	"github.com/edgelog/edgelog/store"
)

// Prepare is for programs that run a node (the edgelog CLI): it resolves
// s.Profile for this machine (store.ResolveStorage), logs the choice and
// why, and sets
// the Go runtime up for the profile: for ProfileLowMemory a memory limit
// (debug.SetMemoryLimit) unless GOMEMLIMIT is set; for ProfileLarge a GOGC
// of largeGCPercent unless GOGC is set, and transparent huge pages for the
// heap (see hugePagesFor) unless GODEBUG=disablethp=1. The environment
// always wins. It returns the choice; pass s unchanged to Open, which
// resolves the profile the same way.
func Prepare(s store.Storage, log *slog.Logger) (store.ProfileChoice, error) {
	r, c, err := store.ResolveStorage(s)
	if err != nil {
		return store.ProfileChoice{}, err
	}
	limit := "none"
	switch env := os.Getenv("GOMEMLIMIT"); {
	case env != "":
		limit = "GOMEMLIMIT=" + env
	case c.Profile == store.ProfileLowMemory:
		l := memoryLimitFor(c.Host)
		debug.SetMemoryLimit(l)
		limit = fmt.Sprintf("%d MiB", l>>20)
	}
	gc := "100"
	switch env := os.Getenv("GOGC"); {
	case env != "":
		gc = "GOGC=" + env
	case c.Profile == store.ProfileLarge:
		debug.SetGCPercent(largeGCPercent)
		gc = strconv.Itoa(largeGCPercent)
	}
	advise, hugePages := hugePagesFor(c.Profile, hugeheap.SystemMode(), os.Getenv("GODEBUG"))
	if advise {
		// The advisor runs for the life of the process, like the settings
		// above.
		if _, err := hugeheap.Start(log); err != nil {
			hugePages = "off (" + err.Error() + ")"
		}
	}
	if log != nil {
		log.Info("profile chosen", slog.String("reason", c.Reason), slog.Any("storage", r),
			slog.String("goMemLimit", limit), slog.String("goGC", gc), slog.String("hugePages", hugePages))
	}
	return c, nil
}

// memoryLimitFor is the Go memory limit PrepareProcess sets for the
// low-memory profile when GOMEMLIMIT is unset: an eighth of the memory,
// between 64 MiB and 100 MiB (100 MiB if the memory is unknown). Without a
// limit the collector lets the heap grow to twice the live heap
// (memtables, caches, request buffers) before it runs, and the memory it
// frees goes back to the system slowly; the limit is what keeps the
// resident size bounded (docs/profiles.md).
func memoryLimitFor(h store.Host) int64 {
	if h.MemoryBytes == 0 {
		return 100 << 20
	}
	return min(max(int64(h.MemoryBytes/8), 64<<20), 100<<20)
}

// largeGCPercent is the Go collector's GOGC that PrepareProcess sets for
// ProfileLarge. Its memtables are most of the live heap, and the collector
// lets garbage grow by GOGC percent of the live heap before it runs: with
// the default 100, up to as much again as the memtables take, all of it
// memory touched and held. Memtables are byte slices without pointers, so
// collecting more often costs little, and it touches less fresh memory,
// whose first touches (page faults) are costly where the node runs in a
// virtual machine (docs/profiles.md).
const largeGCPercent = 50

// hugePagesFor says whether a process of profile p advises its heap for
// transparent huge pages (package hugeheap), given the system's mode and
// the GODEBUG environment variable, and why, for the log. Only
// ProfileLarge does: it is for machines with memory to spare, and a heap
// of huge pages may hold more memory than it uses. GODEBUG=disablethp=1,
// the Go runtime's own switch against huge pages, turns it off; as for the
// runtime, the last disablethp setting in GODEBUG counts.
func hugePagesFor(p store.Profile, mode hugeheap.Mode, godebug string) (advise bool, why string) {
	disable := ""
	for kv := range strings.SplitSeq(godebug, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(kv), "disablethp="); ok {
			disable = v
		}
	}
	switch {
	case disable == "1":
		return false, "off (GODEBUG=disablethp=1)"
	case p != store.ProfileLarge:
		return false, "off"
	case mode == hugeheap.Madvise:
		return true, "heap"
	case mode == hugeheap.Always:
		return false, "always (system)"
	}
	return false, "off (system: " + string(mode) + ")"
}
