package store

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Profile names a preset of storage and memory settings. Settings given
// explicitly (non-zero Storage fields) always win over the preset.
type Profile string

const (
	// ProfileAuto (also the empty string) picks ProfileLowMemory on 32-bit
	// builds and on machines with at most LowMemoryThreshold of RAM (or a
	// cgroup memory limit that low), ProfileLarge on 64-bit builds with at
	// least LargeMemoryThreshold, else ProfileDefault.
	ProfileAuto Profile = "auto"
	// ProfileDefault suits gateways and small servers: 32 MiB memtables, a
	// 64 MiB block cache.
	ProfileDefault Profile = "default"
	// ProfileLarge suits servers with memory to spare: ProfileDefault with
	// 128 MiB memtables, a lower GOGC and transparent huge pages for the
	// heap (package internal/profile). Badger keeps three memtables, up
	// to 384 MiB, and builds a flushed one's table in memory, so the heap
	// peaks far above the memtables while it does. Their logs take up to
	// 768 MiB of disk, and the disk reserve (Storage.MinFreeBytes) grows to
	// 800 MiB. In return a node that stores a stream of incoming events
	// flushes and compacts a quarter as often and takes far fewer page
	// faults, so catching up costs much less CPU (docs/profiles.md).
	ProfileLarge Profile = "large"
	// ProfileLowMemory suits devices with 1 GiB of RAM or less: 8 MiB
	// memtables, an 8 MiB block cache, Badger's minimum of 2 compactors,
	// fewer level-0 tables, small value-log files, and a Go memory limit
	// when GOMEMLIMIT is not set (package internal/profile).
	ProfileLowMemory Profile = "low-memory"
)

// LowMemoryThreshold is the amount of memory at or below which ProfileAuto
// picks ProfileLowMemory.
const LowMemoryThreshold = 1 << 30

// LargeMemoryThreshold is the amount of memory from which ProfileAuto picks
// ProfileLarge on 64-bit builds: its memtables then take under 5% of it,
// and its heap's peak while a memtable is flushed a small share.
const LargeMemoryThreshold = 8 << 30

// DefaultMaxDBBytes32 is Storage.MaxDBBytes on 32-bit builds when it is not
// set: Badger maps its files into memory, and a 32-bit process has only 2-3
// GiB of address space for them, the heap and the stacks.
const DefaultMaxDBBytes32 = 1 << 30

// Host describes the machine a profile is chosen for.
type Host struct {
	// MemoryBytes is the memory the process may use: physical RAM, or the
	// cgroup memory limit when that is lower; 0 if unknown.
	MemoryBytes uint64
	// MemorySource says where MemoryBytes came from ("RAM", "cgroup limit").
	MemorySource string
	// WordBits is 32 or 64 (strconv.IntSize of the build).
	WordBits int
	// Arch is the build's GOARCH.
	Arch string
}

// ProfileChoice is a resolved profile and why it was chosen.
type ProfileChoice struct {
	Profile Profile // ProfileDefault, ProfileLarge or ProfileLowMemory, never ProfileAuto
	Reason  string  // e.g. "1 GiB RAM", "32-bit build (arm)", "set in the settings"
	Host    Host    // the machine it was chosen for (ResolveStorage)
}

// ParseProfile checks a profile name from settings; "" means ProfileAuto.
func ParseProfile(s string) (Profile, error) {
	switch p := Profile(strings.TrimSpace(s)); p {
	case "", ProfileAuto:
		return ProfileAuto, nil
	case ProfileDefault, ProfileLarge, ProfileLowMemory:
		return p, nil
	}
	return "", fmt.Errorf("storage profile %q: want %q, %q, %q or %q", s, ProfileAuto, ProfileDefault, ProfileLarge, ProfileLowMemory)
}

// ChooseProfile resolves want for host h. It does no I/O.
func ChooseProfile(want Profile, h Host) (ProfileChoice, error) {
	p, err := ParseProfile(string(want))
	if err != nil {
		return ProfileChoice{}, err
	}
	if p != ProfileAuto {
		return ProfileChoice{Profile: p, Reason: "set in the settings"}, nil
	}
	if h.WordBits == 32 {
		return ProfileChoice{Profile: ProfileLowMemory, Reason: fmt.Sprintf("32-bit build (%s)", h.Arch)}, nil
	}
	src := h.MemorySource
	if src == "" {
		src = "RAM"
	}
	if h.MemoryBytes == 0 {
		return ProfileChoice{Profile: ProfileDefault, Reason: "memory size unknown"}, nil
	}
	reason := humanBytes(h.MemoryBytes) + " " + src
	switch {
	case h.MemoryBytes <= LowMemoryThreshold:
		return ProfileChoice{Profile: ProfileLowMemory, Reason: reason}, nil
	case h.MemoryBytes >= LargeMemoryThreshold:
		return ProfileChoice{Profile: ProfileLarge, Reason: reason}, nil
	}
	return ProfileChoice{Profile: ProfileDefault, Reason: reason}, nil
}

// preset returns the settings of a resolved profile for a build of wordBits.
func preset(p Profile, wordBits int) Storage {
	s := Storage{Profile: p, MemTableSize: 32 << 20, BlockCacheSize: 64 << 20, NumCompactors: 2}
	switch p {
	case ProfileLowMemory:
		// Badger refuses a single compactor; 2 is its minimum.
		s.MemTableSize, s.BlockCacheSize, s.NumCompactors = 8<<20, 8<<20, 2
		s.TrimInterval = 500 * time.Millisecond
	case ProfileLarge:
		s.MemTableSize = 128 << 20
	}
	if wordBits == 32 {
		s.MaxDBBytes = DefaultMaxDBBytes32
	}
	return s
}

// resolve picks the profile for h, fills s's zero fields from it and then
// from the general defaults. The result's Profile is never ProfileAuto.
func (s Storage) resolve(h Host) (Storage, error) {
	c, err := ChooseProfile(s.Profile, h)
	if err != nil {
		return s, err
	}
	p := preset(c.Profile, h.WordBits)
	s.Profile, s.profileReason = c.Profile, c.Reason
	if s.MemTableSize <= 0 {
		s.MemTableSize = p.MemTableSize
	}
	if s.BlockCacheSize <= 0 {
		s.BlockCacheSize = p.BlockCacheSize
	}
	if s.NumCompactors <= 0 {
		s.NumCompactors = p.NumCompactors
	}
	switch {
	case s.TrimInterval == 0:
		s.TrimInterval = p.TrimInterval
	case s.TrimInterval < 0:
		s.TrimInterval = 0 // explicitly never
	}
	switch {
	case s.MaxDBBytes == 0:
		s.MaxDBBytes = p.MaxDBBytes
	case s.MaxDBBytes < 0:
		s.MaxDBBytes = 0 // explicitly unlimited
	}
	s.wordBits = h.WordBits
	return s.withDefaults(), nil
}

// tuneBadger applies the resolved profile's Badger options beyond the
// Storage fields. On 32-bit builds, value-log files small enough that their
// mappings (Badger maps twice the file size) leave room in the address
// space. For low memory, small level-0 and value-log files, and tables of
// 512 KiB: compaction builds up to 8 tables at once in memory, and with
// Badger's 2 MiB default that alone pushed the heap past the profile's
// memory limit (docs/profiles.md).
func tuneBadger(opts badger.Options, s Storage) badger.Options {
	if s.wordBits == 32 {
		// Values above the value threshold only (payloads are limited to far
		// less by default), so the log stays small.
		opts = opts.WithValueLogFileSize(16 << 20).
			WithBaseTableSize(1 << 20).
			WithIndexCacheSize(4 << 20)
	}
	if s.Profile == ProfileLowMemory {
		opts = opts.WithNumLevelZeroTables(3).
			WithNumLevelZeroTablesStall(8).
			WithValueLogFileSize(min(opts.ValueLogFileSize, 64<<20)).
			WithBaseTableSize(512 << 10)
	}
	return opts
}

// vlogBytes is the size of the value-log files in the database directory
// except the newest: Badger creates that one at twice ValueLogFileSize
// (sparse) and truncates it to what it holds when it starts the next one.
func vlogBytes(dbDir string) int64 {
	files, _ := filepath.Glob(filepath.Join(dbDir, "*.vlog"))
	slices.Sort(files) // names are zero-padded file numbers
	var n int64
	for _, f := range files[:max(len(files)-1, 0)] {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// DetectHost describes the running machine: its RAM from /proc/meminfo,
// lowered to the process's cgroup memory limit (v2 or v1) if one is set, and
// the build's word size. Memory is 0 where /proc is not available.
func DetectHost() Host { return detectHost(os.DirFS("/")) }

func detectHost(root fs.FS) Host {
	h := Host{WordBits: strconv.IntSize, Arch: runtime.GOARCH}
	if b, err := fs.ReadFile(root, "proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseUint(f[1], 10, 64); err == nil {
					h.MemoryBytes, h.MemorySource = kb<<10, "RAM"
				}
			}
		}
	}
	if lim := cgroupLimit(root); lim > 0 && (h.MemoryBytes == 0 || lim < h.MemoryBytes) {
		h.MemoryBytes, h.MemorySource = lim, "cgroup limit"
	}
	return h
}

// cgroupLimit returns the process's cgroup memory limit, 0 if none.
func cgroupLimit(root fs.FS) uint64 {
	read := func(name string) uint64 {
		b, err := fs.ReadFile(root, name)
		if err != nil {
			return 0
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || v >= math.MaxInt64/2 { // "max", or v1's "unlimited" value
			return 0
		}
		return v
	}
	if b, err := fs.ReadFile(root, "proc/self/cgroup"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "0::"); ok {
				p := strings.Trim(rest, "/")
				if v := read(filepath.ToSlash(filepath.Join("sys/fs/cgroup", p, "memory.max"))); v > 0 {
					return v
				}
			}
		}
	}
	if v := read("sys/fs/cgroup/memory.max"); v > 0 {
		return v
	}
	return read("sys/fs/cgroup/memory/memory.limit_in_bytes")
}

// ResolveStorage returns s as Open resolves it on this machine: the
// profile chosen for it, why, and every zero field filled in.
func ResolveStorage(s Storage) (Storage, ProfileChoice, error) {
	h := DetectHost()
	r, err := s.resolve(h)
	if err != nil {
		return s, ProfileChoice{}, err
	}
	return r, ProfileChoice{Profile: r.Profile, Reason: r.profileReason, Host: h}, nil
}

// LogValue presents resolved settings in logs.
func (s Storage) LogValue() slog.Value {
	trim := "never"
	if s.TrimInterval > 0 {
		trim = "every " + s.TrimInterval.String()
	}
	maxDB := "unlimited"
	if s.MaxDBBytes > 0 {
		maxDB = humanBytes(uint64(s.MaxDBBytes))
	}
	return slog.GroupValue(slog.String("profile", string(s.Profile)),
		slog.String("memTable", humanBytes(uint64(s.MemTableSize))), slog.String("blockCache", humanBytes(uint64(s.BlockCacheSize))),
		slog.String("maxDB", maxDB), slog.String("trim", trim))
}

// humanBytes formats n in binary units, rounded to one decimal.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n)/unit, 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + units[i]
}
