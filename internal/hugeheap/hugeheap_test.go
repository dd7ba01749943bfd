package hugeheap

import (
	"slices"
	"strings"
	"testing"

	"github.com/edgelog/edgelog/internal/memtrim"
)

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{
		"always [madvise] never\n": Madvise,
		"[always] madvise never\n": Always,
		"always madvise [never]\n": Never,
		"always madvise never\n":   Unsupported,
		"[inherit] always never\n": Unsupported,
		"[always":                  Unsupported,
		"":                         Unsupported,
	} {
		if got := ParseMode([]byte(in)); got != want {
			t.Errorf("ParseMode(%q) = %q, want %q", in, got, want)
		}
	}
}

func parseMaps(t *testing.T, s string) []memtrim.Mapping {
	t.Helper()
	ms, err := memtrim.ParseSmaps(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestHeapRanges(t *testing.T) {
	// Without mapping names (a kernel without CONFIG_ANON_VMA_NAME): the
	// heap is the run of adjacent anonymous mappings holding the anchor;
	// an anonymous mapping after a gap, or next to a file, is not.
	unnamed := parseMaps(t, `00400000-00800000 r-xp 00000000 fd:00 12 /usr/bin/edgelog
00800000-00900000 rw-p 00400000 fd:00 12 /usr/bin/edgelog
00900000-00a00000 rw-p 00000000 00:00 0
7b0000000000-7b0004000000 rw-p 00000000 00:00 0
7b0004000000-7b0008000000 rw-p 00000000 00:00 0
7b0008000000-7b0010000000 ---p 00000000 00:00 0
7b0010000000-7b0014000000 rw-p 00000000 00:00 0
7b0020000000-7b0024000000 rw-p 00000000 00:00 0
7f0000000000-7f0000100000 rw-s 00000000 fd:00 99 /data/000001.mem
`)
	want := []Range{{0x7b0000000000, 0x7b0004000000}, {0x7b0004000000, 0x7b0008000000}, {0x7b0010000000, 0x7b0014000000}}
	for _, anchor := range []uint64{0x7b0000000000, 0x7b0005000000, 0x7b0013ffffff} {
		if got := HeapRanges(unnamed, anchor); !slices.Equal(got, want) {
			t.Errorf("anchor %#x: %x, want %x", anchor, got, want)
		}
	}
	for _, anchor := range []uint64{0x00500000, 0x7f0000000000, 0x7b0014000000, 0x1} {
		if got := HeapRanges(unnamed, anchor); got != nil {
			t.Errorf("anchor %#x outside the heap: %x", anchor, got)
		}
	}
	// With names (Go 1.25+ on kernels that support them): other runtime
	// mappings are not the heap, even when adjacent.
	named := parseMaps(t, `c000000000-c004000000 rw-p 00000000 00:00 0 [anon: Go: heap]
c004000000-c008000000 ---p 00000000 00:00 0 [anon: Go: heap reservation]
c008000000-c008100000 rw-p 00000000 00:00 0 [anon: Go: heap index]
7f0000000000-7f0000100000 rw-p 00000000 00:00 0 [anon: Go: heap metadata]
`)
	if got := HeapRanges(named, 0xc000000010); !slices.Equal(got, []Range{{0xc000000000, 0xc004000000}}) {
		t.Errorf("named: %x", got)
	}
	if got := HeapRanges(named, 0x7f0000000010); got != nil {
		t.Errorf("anchor in heap metadata: %x", got)
	}
}
