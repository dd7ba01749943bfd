package memtrim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTrimKeepsData maps a file shared, as Badger does, writes through the
// mapping, trims, and reads every byte back, through the mapping and from
// the file; the executable is trimmed too, and the test goes on running.
func TestTrimKeepsData(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "000001.sst")
	const size = 8 << 20
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(data)
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7 + i>>12)
	}
	copy(data, want) // dirty pages, not synced

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	before := rssFile(t)
	trimmed, err := Trim(Selector{Dirs: []string{dir}, Files: []string{exe}})
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	if trimmed == 0 || after >= before {
		t.Errorf("trimmed %d bytes; file-backed RSS %d kB before, %d kB after", trimmed, before, after)
	}
	if !bytes.Equal(data, want) {
		t.Fatal("the mapping changed")
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, want) {
		t.Fatal("the file changed")
	}
}

// rssFile returns this process's file-backed resident size in kB.
func rssFile(t *testing.T) int {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("RssFile: %q", line)
			}
			return kb
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// BenchmarkTrim: one Trim of a process holding a 100 MB heap and 500
// shared mappings of 512 KiB files (a database of 250 MB in the
// low-memory profile's tables), all resident and clean, as Badger's
// tables are once written: the cost of a trim after a burst of reads.
func BenchmarkTrim(b *testing.B) {
	dir := b.TempDir()
	heap := make([]byte, 100<<20)
	for i := range heap {
		heap[i] = byte(i)
	}
	var maps [][]byte
	for i := range 500 {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%06d.sst", i)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Write(heap[:512<<10]); err != nil {
			b.Fatal(err)
		}
		m, err := unix.Mmap(int(f.Fd()), 0, 512<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		maps = append(maps, m)
	}
	defer func() {
		for _, m := range maps {
			unix.Munmap(m)
		}
	}()
	sel := Selector{Dirs: []string{dir}}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		sum := 0
		for _, m := range maps {
			for j := 0; j < len(m); j += 4096 {
				sum += int(m[j])
			}
		}
		_ = sum
		b.StartTimer()
		if _, err := Trim(sel); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = heap[len(heap)-1]
}
