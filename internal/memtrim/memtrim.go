// Package memtrim hands back resident pages of file mappings that the
// kernel could reclaim anyway but still counts in the process's resident
// set size.
//
// Badger writes its tables and write-ahead logs through shared memory maps
// and keeps every table mapped, so each page of the database the node has
// written or read stays resident until memory runs short, and the code
// that ran once at start-up stays resident too. The kernel reclaims such
// pages under pressure, but RSS counts them, and RSS is what monitoring
// reports and what the kernel's out-of-memory killer ranks processes by.
// On a small device a node so looks much bigger than it is.
//
// Two advices, each safe for what it is given:
//   - The executable's read-only mappings get MADV_DONTNEED: the process
//     holds no private copy of their pages (Select checks smaps), so a
//     later access faults the page in again from the file. The executable
//     stays mapped for the life of the process, so the range advised is
//     still the executable's when madvise runs.
//   - Shared mappings of database files get MADV_PAGEOUT, which reclaims
//     the pages (writing dirty ones back first) and never discards data.
//     Badger may unmap a table between reading smaps and madvise, and the
//     kernel may hand the range to another mapping, even the Go heap;
//     MADV_DONTNEED there would zero live memory, MADV_PAGEOUT only swaps
//     it out, if there is swap. It needs Linux 5.4; on older kernels
//     database pages are left alone.
package memtrim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Mapping is one line of /proc/self/smaps that Trim may advise.
type Mapping struct {
	Start, End uint64
	Shared     bool   // a shared mapping ('s'), else private ('p')
	Writable   bool   // mapped writable
	Path       string // the mapped file
	Rss        uint64 // resident bytes
	Anonymous  uint64 // bytes of private copies
}

// Selector decides which mappings to trim.
type Selector struct {
	// Dirs are directories whose files' shared mappings are trimmed
	// (the database directory).
	Dirs []string
	// Files are files whose read-only private mappings are trimmed (the
	// executable: its start-up code).
	Files []string
}

// Advice is what Trim does with a mapping.
type Advice int

const (
	// Keep leaves the mapping alone.
	Keep Advice = iota
	// DontNeed drops the pages from the process (MADV_DONTNEED); only for
	// private mappings of files that stay mapped, without private copies.
	DontNeed
	// PageOut reclaims the pages (MADV_PAGEOUT).
	PageOut
)

// Select says what to do with m: PageOut for a shared mapping of a file
// under one of s.Dirs, DontNeed for a read-only private mapping of one of
// s.Files with no private copies, Keep for the rest and for mappings with
// no resident pages. It does no I/O.
func (s Selector) Select(m Mapping) Advice {
	if m.Rss == 0 || m.Path == "" || m.End <= m.Start {
		return Keep
	}
	if m.Shared {
		for _, d := range s.Dirs {
			if d != "" && strings.HasPrefix(m.Path, strings.TrimSuffix(d, "/")+"/") {
				return PageOut
			}
		}
		return Keep
	}
	if m.Writable || m.Anonymous != 0 {
		return Keep // private copies would be lost
	}
	for _, f := range s.Files {
		if m.Path == f {
			return DontNeed
		}
	}
	return Keep
}

// ErrUnconfirmed is Trim's error when /proc/self/maps confirms fewer than
// half of the mappings /proc/self/smaps lists, as under an emulator, where
// the few that match do so by chance: nothing is trimmed.
var ErrUnconfirmed = errors.New("memtrim: /proc/self/maps and /proc/self/smaps disagree (an emulator?); not trimming")

// Confirmed returns the mappings of smaps that maps lists too, with the
// same range, sharing, writability and file. On Linux /proc/self/smaps and
// /proc/self/maps describe the same mappings. An emulator need not: qemu-user
// answers maps for the emulated process but passes smaps through from its
// own, at addresses shifted from the emulated ones, and advising those
// would hit other memory (MADV_DONTNEED zeroed the emulated program's data
// and crashed it). A mapping that changed between the two reads is left
// for the next round; if fewer than half are confirmed, the two files do
// not describe the same process, and Confirmed returns ErrUnconfirmed.
func Confirmed(smaps, maps []Mapping) ([]Mapping, error) {
	type id struct {
		start, end       uint64
		shared, writable bool
		path             string
	}
	listed := make(map[id]bool, len(maps))
	for _, m := range maps {
		listed[id{m.Start, m.End, m.Shared, m.Writable, m.Path}] = true
	}
	var out []Mapping
	for _, m := range smaps {
		if listed[id{m.Start, m.End, m.Shared, m.Writable, m.Path}] {
			out = append(out, m)
		}
	}
	if 2*len(out) < len(smaps) {
		return nil, ErrUnconfirmed
	}
	return out, nil
}

// ParseSmaps reads the mappings of an smaps file (or of a maps file, which
// has no resident sizes).
func ParseSmaps(r io.Reader) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		if name, rest, ok := bytes.Cut(line, []byte(":")); ok && !bytes.ContainsAny(name, " -") {
			// A field of the current mapping: "Rss:   1234 kB".
			if len(out) == 0 {
				continue
			}
			m := &out[len(out)-1]
			switch string(name) {
			case "Rss", "Anonymous":
				f := strings.Fields(string(rest))
				if len(f) != 2 || f[1] != "kB" {
					return nil, fmt.Errorf("memtrim: smaps: malformed line %q", line)
				}
				kb, err := strconv.ParseUint(f[0], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("memtrim: smaps: malformed line %q", line)
				}
				if name[0] == 'R' {
					m.Rss = kb << 10
				} else {
					m.Anonymous = kb << 10
				}
			}
			continue
		}
		m, err := parseHeader(string(line))
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("memtrim: reading smaps: %w", err)
	}
	return out, nil
}

// parseHeader parses a mapping's first line:
// "7f..-7f.. rw-s 00000000 fd:01 1234   /path/to/file".
func parseHeader(line string) (Mapping, error) {
	f := strings.Fields(line)
	if len(f) < 5 {
		return Mapping{}, fmt.Errorf("memtrim: smaps: malformed line %q", line)
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	if !ok || err1 != nil || err2 != nil || len(f[1]) != 4 {
		return Mapping{}, fmt.Errorf("memtrim: smaps: malformed line %q", line)
	}
	m := Mapping{Start: start, End: end, Writable: f[1][1] == 'w', Shared: f[1][3] == 's'}
	// The path is what follows the fifth field; it may hold spaces.
	rest := line
	for range 5 {
		rest = strings.TrimLeft(rest, " \t")
		rest = rest[strings.IndexAny(rest+" ", " \t"):]
	}
	m.Path = strings.TrimSuffix(strings.TrimSpace(rest), " (deleted)")
	return m, nil
}
