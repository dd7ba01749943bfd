package memtrim

import (
	"errors"
	"strings"
	"testing"
)

const smaps = `00400000-01200000 r-xp 00000000 fd:01 1234                               /usr/bin/edgelog
Size:              14336 kB
Rss:               11812 kB
Anonymous:             0 kB
01200000-01f00000 r--p 00e00000 fd:01 1234                               /usr/bin/edgelog
Rss:               13972 kB
Anonymous:             4 kB
01f00000-01f90000 rw-p 01b00000 fd:01 1234                               /usr/bin/edgelog
Rss:                 568 kB
Anonymous:           100 kB
7f0000000000-7f0000100000 rw-s 00000000 fd:01 99                         /var/lib/edgelog/db/000122.sst
Rss:                1048 kB
Anonymous:             0 kB
7f0000100000-7f0000200000 rw-s 00000000 fd:01 98                         /var/lib/edgelog/db/000121.sst (deleted)
Rss:                 512 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-s 00000000 fd:01 97                         /var/lib/edgelog/db/000120.sst
Rss:                   0 kB
7f0000300000-7f0000400000 rw-s 00000000 fd:01 96                         /var/lib/edgelog-other/x
Rss:                 100 kB
7f0000400000-7f0000500000 rw-p 00000000 00:00 0 
Rss:                4096 kB
Anonymous:          4096 kB
7f0000500000-7f0000600000 r--p 00000000 fd:01 95                         /var/lib/edgelog/db/with space.sst
Rss:                 100 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
`

func TestParseAndSelect(t *testing.T) {
	maps, err := ParseSmaps(strings.NewReader(smaps))
	if err != nil {
		t.Fatal(err)
	}
	s := Selector{Dirs: []string{"/var/lib/edgelog/db/"}, Files: []string{"/usr/bin/edgelog"}}
	want := []struct {
		path   string
		rss    uint64
		advice Advice
	}{
		{"/usr/bin/edgelog", 11812 << 10, DontNeed},
		{"/usr/bin/edgelog", 13972 << 10, Keep}, // a private copy of a page
		{"/usr/bin/edgelog", 568 << 10, Keep},   // writable
		{"/var/lib/edgelog/db/000122.sst", 1048 << 10, PageOut},
		{"/var/lib/edgelog/db/000121.sst", 512 << 10, PageOut},
		{"/var/lib/edgelog/db/000120.sst", 0, Keep}, // nothing resident
		{"/var/lib/edgelog-other/x", 100 << 10, Keep},
		{"", 4096 << 10, Keep},                                  // the heap
		{"/var/lib/edgelog/db/with space.sst", 100 << 10, Keep}, // private: not a file Badger writes
	}
	if len(maps) != len(want) {
		t.Fatalf("parsed %d mappings, want %d: %+v", len(maps), len(want), maps)
	}
	for i, w := range want {
		m := maps[i]
		if m.Path != w.path || m.Rss != w.rss {
			t.Errorf("mapping %d: path %q rss %d, want %q %d", i, m.Path, m.Rss, w.path, w.rss)
		}
		if got := s.Select(m); got != w.advice {
			t.Errorf("mapping %d (%s): advice %v, want %v", i, m.Path, got, w.advice)
		}
	}
	if m := maps[3]; m.Start != 0x7f0000000000 || m.End != 0x7f0000100000 || !m.Shared || !m.Writable {
		t.Errorf("mapping 3: %+v", m)
	}
}

func TestParseSmapsMalformed(t *testing.T) {
	for _, in := range []string{
		"zz-01 r-xp 0 fd:01 1 /x\n",
		"00400000-01200000 r-xp\n",
		"00400000-01200000 r-xp 0 fd:01 1 /x\nRss: many kB\n",
		"00400000-01200000 r-xp 0 fd:01 1 /x\nRss: 12\n",
	} {
		if _, err := ParseSmaps(strings.NewReader(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func FuzzParseSmaps(f *testing.F) {
	f.Add(smaps)
	f.Fuzz(func(t *testing.T, in string) {
		maps, err := ParseSmaps(strings.NewReader(in))
		if err != nil {
			return
		}
		s := Selector{Dirs: []string{"/var/lib/edgelog/db"}, Files: []string{"/usr/bin/edgelog"}}
		for _, m := range maps {
			if a := s.Select(m); a != Keep && m.End <= m.Start {
				t.Fatalf("advice %v for an empty range %+v", a, m)
			}
		}
	})
}

// TestConfirmed: only mappings that /proc/self/maps lists alike are kept.
// The shifted maps is what qemu-user answers: its own smaps, the emulated
// process's maps 4 KiB lower.
func TestConfirmed(t *testing.T) {
	sm, err := ParseSmaps(strings.NewReader(smaps))
	if err != nil {
		t.Fatal(err)
	}
	var same strings.Builder
	for _, line := range strings.Split(smaps, "\n") {
		if h, _, ok := strings.Cut(line, ":"); ok && !strings.ContainsAny(h, " -") {
			continue // an smaps field, not in maps
		}
		same.WriteString(line + "\n")
	}
	maps, err := ParseSmaps(strings.NewReader(same.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Confirmed(sm, maps); err != nil || len(got) != len(sm) || got[0].Rss != sm[0].Rss {
		t.Errorf("maps listing the same mappings: kept %d of %d (%v)", len(got), len(sm), err)
	}

	// An emulator's: every mapping 4 KiB off, or all but two, which
	// match by chance (qemu's own vector page and stack, say).
	shifted := make([]Mapping, len(maps))
	for i, m := range maps {
		if i >= 2 {
			m.Start -= 0x1000
			m.End -= 0x1000
		}
		shifted[i] = m
	}
	if got, err := Confirmed(sm, shifted[2:]); !errors.Is(err, ErrUnconfirmed) || got != nil {
		t.Errorf("maps at other addresses: kept %v, error %v", got, err)
	}
	if got, err := Confirmed(sm, shifted); !errors.Is(err, ErrUnconfirmed) || got != nil {
		t.Errorf("maps at other addresses but two: kept %v, error %v", got, err)
	}

	// Between the two reads one mapping went and one was remapped.
	changed := append([]Mapping(nil), maps[1:]...)
	changed[0].Writable = !changed[0].Writable
	if got, err := Confirmed(sm, changed); err != nil || len(got) != len(sm)-2 {
		t.Errorf("one mapping gone, one changed: kept %d of %d (%v)", len(got), len(sm), err)
	}
}
