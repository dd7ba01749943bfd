package hugeheap

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// vmFlags returns the VmFlags of the mapping that holds addr, from
// /proc/self/smaps ("rd wr mr mw me ac hg": hg is MADV_HUGEPAGE).
func vmFlags(t *testing.T, addr uint64) []string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if fs := strings.Fields(line); len(fs) > 0 && strings.Contains(fs[0], "-") && !strings.HasSuffix(fs[0], ":") {
			ms := parseMaps(t, line)
			in = ms[0].Start <= addr && addr < ms[0].End
			continue
		}
		if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok && in {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return nil
}

// TestStart: the heap gets advised, also the pieces the runtime maps
// after Start as the heap grows.
func TestStart(t *testing.T) {
	stop, err := Start(nil)
	if errors.Is(err, ErrNotAdvised) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	again, err := Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	again() // does nothing: the first advisor keeps running
	if fl := vmFlags(t, uint64(uintptr(unsafe.Pointer(anchor)))); !strings.Contains(strings.Join(fl, " "), "hg") {
		t.Fatalf("heap not advised after Start: VmFlags %v", fl)
	}
	// Grow the heap well beyond what it has mapped.
	var grown [][]byte
	for range 4 {
		grown = append(grown, make([]byte, 64<<20))
	}
	for _, b := range grown {
		addr := uint64(uintptr(unsafe.Pointer(&b[0])))
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(strings.Join(vmFlags(t, addr), " "), "hg") {
			if time.Now().After(deadline) {
				t.Fatalf("heap grown to %#x not advised", addr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
