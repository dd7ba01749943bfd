// Package hugeheap asks the kernel to back the Go heap with transparent
// huge pages (2 MiB on x86-64) where the system leaves that to each
// program (transparent_hugepage "madvise", the default of many
// distributions).
//
// The first write to a page of fresh memory traps into the kernel, which
// finds and zeroes a page. With 4 KiB pages a node that stores a stream
// of events takes such a fault for every 4 KiB its heap grows, its
// memtables above all; in a virtual machine a fault costs more, as the
// host backs the page too. With huge pages one fault serves 2 MiB, so a
// node catching up takes a fraction of the faults (docs/profiles.md).
//
// The Go runtime gives no advice of its own (since Go 1.21.1), and it
// maps its heap piece by piece as the heap grows, so Start advises the
// heap once and then watches the runtime's mapped memory, advising each
// new piece of the heap.
// MADV_HUGEPAGE changes no data; at worst it costs memory: the kernel may
// fill a whole 2 MiB page where the heap touched less of it.
package hugeheap

import (
	"bytes"
	"errors"
	"slices"

	"github.com/edgelog/edgelog/internal/memtrim"
)

// Mode is the system's transparent huge page setting.
type Mode string

const (
	// Always: the kernel uses huge pages wherever it can; no advice needed.
	Always Mode = "always"
	// Madvise: the kernel uses huge pages where a program asked for them.
	Madvise Mode = "madvise"
	// Never: no transparent huge pages.
	Never Mode = "never"
	// Unsupported: the kernel has no transparent huge pages, or this is
	// not Linux.
	Unsupported Mode = "unsupported"
)

// ParseMode reads the contents of
// /sys/kernel/mm/transparent_hugepage/enabled, where the active choice is
// in brackets: "always [madvise] never".
func ParseMode(b []byte) Mode {
	_, rest, ok := bytes.Cut(b, []byte("["))
	if !ok {
		return Unsupported
	}
	m, _, ok := bytes.Cut(rest, []byte("]"))
	switch mode := Mode(m); {
	case !ok:
		return Unsupported
	case mode == Always, mode == Madvise, mode == Never:
		return mode
	}
	return Unsupported
}

// ErrNotAdvised is Start's error where the system's mode is not Madvise:
// the heap gets huge pages anyway (Always) or never can.
var ErrNotAdvised = errors.New("hugeheap: the heap is not advised")

// Range is an address range [Start, End).
type Range struct{ Start, End uint64 }

// heapNames are the names the Go runtime (1.25+) gives its heap mappings
// where the kernel supports naming anonymous memory; elsewhere they have
// no name.
var heapNames = []string{"", "[anon: Go: heap]", "[anon: Go: heap reservation]"}

// HeapRanges returns the writable mappings of the Go heap among ms (parsed
// from /proc/self/maps, in address order), given anchor, the address of an
// object on the heap. The heap is the run of adjacent anonymous mappings
// that holds anchor: the runtime reserves its arenas next to each other,
// upwards from a base, and maps them writable piece by piece; reserved
// pieces not yet mapped are part of the run but not returned. It returns
// nil if no anonymous mapping holds anchor. It does no I/O.
func HeapRanges(ms []memtrim.Mapping, anchor uint64) []Range {
	heap := func(m memtrim.Mapping) bool { return !m.Shared && slices.Contains(heapNames, m.Path) }
	at := slices.IndexFunc(ms, func(m memtrim.Mapping) bool { return m.Start <= anchor && anchor < m.End })
	if at < 0 || !heap(ms[at]) {
		return nil
	}
	lo, hi := at, at
	for lo > 0 && heap(ms[lo-1]) && ms[lo-1].End == ms[lo].Start {
		lo--
	}
	for hi+1 < len(ms) && heap(ms[hi+1]) && ms[hi+1].Start == ms[hi].End {
		hi++
	}
	var out []Range
	for _, m := range ms[lo : hi+1] {
		if m.Writable {
			out = append(out, Range{m.Start, m.End})
		}
	}
	return out
}
