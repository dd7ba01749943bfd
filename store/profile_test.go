package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
)

const gib = 1 << 30

func TestChooseProfile(t *testing.T) {
	for _, tc := range []struct {
		want   Profile
		host   Host
		got    Profile
		reason string
	}{
		{"", Host{MemoryBytes: 16 * gib, MemorySource: "RAM", WordBits: 64, Arch: "amd64"}, ProfileLarge, "16 GiB RAM"},
		{ProfileAuto, Host{MemoryBytes: 8 * gib, MemorySource: "RAM", WordBits: 64, Arch: "arm64"}, ProfileLarge, "8 GiB RAM"},
		{ProfileAuto, Host{MemoryBytes: 8*gib - 1<<20, MemorySource: "RAM", WordBits: 64, Arch: "arm64"}, ProfileDefault, "8 GiB RAM"},
		{ProfileAuto, Host{MemoryBytes: 4 * gib, MemorySource: "cgroup limit", WordBits: 64, Arch: "amd64"}, ProfileDefault, "4 GiB cgroup limit"},
		{ProfileAuto, Host{MemoryBytes: 64 * gib, MemorySource: "RAM", WordBits: 32, Arch: "arm"}, ProfileLowMemory, "32-bit build (arm)"},
		{ProfileLarge, Host{MemoryBytes: 2 * gib, WordBits: 64}, ProfileLarge, "set in the settings"},
		{ProfileAuto, Host{MemoryBytes: gib, MemorySource: "RAM", WordBits: 64, Arch: "arm64"}, ProfileLowMemory, "1 GiB RAM"},
		{ProfileAuto, Host{MemoryBytes: 948 << 20, MemorySource: "RAM", WordBits: 64, Arch: "arm64"}, ProfileLowMemory, "948 MiB RAM"},
		{ProfileAuto, Host{MemoryBytes: gib + 1<<20, MemorySource: "RAM", WordBits: 64, Arch: "arm64"}, ProfileDefault, "1 GiB RAM"},
		{ProfileAuto, Host{MemoryBytes: 512 << 20, MemorySource: "cgroup limit", WordBits: 64, Arch: "amd64"}, ProfileLowMemory, "512 MiB cgroup limit"},
		{ProfileAuto, Host{MemoryBytes: 4 * gib, MemorySource: "RAM", WordBits: 32, Arch: "arm"}, ProfileLowMemory, "32-bit build (arm)"},
		{ProfileAuto, Host{WordBits: 64, Arch: "riscv64"}, ProfileDefault, "memory size unknown"},
		{ProfileDefault, Host{MemoryBytes: 256 << 20, WordBits: 32, Arch: "arm"}, ProfileDefault, "set in the settings"},
		{ProfileLowMemory, Host{MemoryBytes: 64 * gib, WordBits: 64}, ProfileLowMemory, "set in the settings"},
	} {
		c, err := ChooseProfile(tc.want, tc.host)
		if err != nil || c.Profile != tc.got || c.Reason != tc.reason {
			t.Errorf("ChooseProfile(%q, %+v) = %+v, %v; want %s (%s)", tc.want, tc.host, c, err, tc.got, tc.reason)
		}
	}
	if _, err := ChooseProfile("tiny", Host{WordBits: 64}); err == nil || !strings.Contains(err.Error(), `"large" or "low-memory"`) {
		t.Errorf("unknown profile: err = %v", err)
	}
}

func TestResolveStorage(t *testing.T) {
	small := Host{MemoryBytes: 512 << 20, MemorySource: "RAM", WordBits: 64, Arch: "arm64"}
	big := Host{MemoryBytes: 4 * gib, MemorySource: "RAM", WordBits: 64, Arch: "amd64"}
	large := Host{MemoryBytes: 32 * gib, MemorySource: "RAM", WordBits: 64, Arch: "amd64"}
	arm := Host{MemoryBytes: 2 * gib, MemorySource: "RAM", WordBits: 32, Arch: "arm"}

	s, err := Storage{}.resolve(big)
	if err != nil || s.Profile != ProfileDefault || s.MemTableSize != 32<<20 || s.BlockCacheSize != 64<<20 || s.MaxDBBytes != 0 || s.TrimInterval != 0 {
		t.Errorf("default: %+v, %v", s, err)
	}
	s, err = Storage{}.resolve(large)
	if err != nil || s.Profile != ProfileLarge || s.MemTableSize != 128<<20 || s.BlockCacheSize != 64<<20 || s.NumCompactors != 2 || s.MaxDBBytes != 0 || s.TrimInterval != 0 {
		t.Errorf("large: %+v, %v", s, err)
	}
	if want := int64(2*numMemtables*(128<<20) + 32<<20); s.MinFreeBytes != want {
		t.Errorf("large reserve %d, want %d", s.MinFreeBytes, want)
	}
	s, _ = Storage{MemTableSize: 32 << 20, MinFreeBytes: 1 << 30}.resolve(large)
	if s.Profile != ProfileLarge || s.MemTableSize != 32<<20 || s.MinFreeBytes != 1<<30 {
		t.Errorf("large with explicit sizes: %+v", s)
	}
	s, _ = Storage{}.resolve(small)
	if s.Profile != ProfileLowMemory || s.MemTableSize != 8<<20 || s.BlockCacheSize != 8<<20 || s.NumCompactors != 2 || s.MaxDBBytes != 0 || s.TrimInterval != 500*time.Millisecond {
		t.Errorf("low-memory: %+v", s)
	}
	if want := int64(2*numMemtables*(8<<20) + 32<<20); s.MinFreeBytes != want {
		t.Errorf("low-memory reserve %d, want %d", s.MinFreeBytes, want)
	}
	// Explicit settings win over the preset.
	s, _ = Storage{MemTableSize: 16 << 20, BlockCacheSize: 1 << 20}.resolve(small)
	if s.MemTableSize != 16<<20 || s.BlockCacheSize != 1<<20 {
		t.Errorf("explicit settings lost: %+v", s)
	}
	s, _ = Storage{TrimInterval: -1}.resolve(small)
	if s.TrimInterval != 0 {
		t.Errorf("low-memory with TrimInterval -1: trims every %v", s.TrimInterval)
	}
	s, _ = Storage{TrimInterval: time.Minute}.resolve(big)
	if s.TrimInterval != time.Minute {
		t.Errorf("default with TrimInterval 1m: trims every %v", s.TrimInterval)
	}
	s, _ = Storage{}.resolve(arm)
	if s.Profile != ProfileLowMemory || s.MaxDBBytes != DefaultMaxDBBytes32 {
		t.Errorf("32-bit: %+v", s)
	}
	s, _ = Storage{MaxDBBytes: -1}.resolve(arm)
	if s.MaxDBBytes != 0 {
		t.Errorf("32-bit with MaxDBBytes -1: cap %d, want none", s.MaxDBBytes)
	}
	s, _ = Storage{MaxDBBytes: 100 << 20, Profile: ProfileDefault}.resolve(arm)
	if s.MaxDBBytes != 100<<20 || s.Profile != ProfileDefault || s.MemTableSize != 32<<20 {
		t.Errorf("32-bit default profile: %+v", s)
	}
	if _, err := (Storage{Profile: "huge"}).resolve(big); err == nil {
		t.Error("unknown profile accepted")
	}
	if _, err := (Config{DataDir: "x", Storage: Storage{Profile: "huge"}}).withDefaults(); err == nil {
		t.Error("Config with an unknown profile accepted")
	}
}

func TestDetectHost(t *testing.T) {
	meminfo := "MemTotal:        3884424 kB\nMemFree:          123456 kB\n"
	for _, tc := range []struct {
		name  string
		fs    fstest.MapFS
		bytes uint64
		src   string
	}{
		{"ram only", fstest.MapFS{"proc/meminfo": {Data: []byte(meminfo)}}, 3884424 << 10, "RAM"},
		{"cgroup v2 own group", fstest.MapFS{
			"proc/meminfo":     {Data: []byte(meminfo)},
			"proc/self/cgroup": {Data: []byte("0::/system.slice/edgelog.service\n")},
			"sys/fs/cgroup/system.slice/edgelog.service/memory.max": {Data: []byte("268435456\n")},
		}, 256 << 20, "cgroup limit"},
		{"cgroup v2 max", fstest.MapFS{
			"proc/meminfo":             {Data: []byte(meminfo)},
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("max\n")},
		}, 3884424 << 10, "RAM"},
		{"cgroup v1", fstest.MapFS{
			"proc/meminfo": {Data: []byte(meminfo)},
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("536870912\n")},
		}, 512 << 20, "cgroup limit"},
		{"cgroup v1 unlimited", fstest.MapFS{
			"proc/meminfo": {Data: []byte(meminfo)},
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")},
		}, 3884424 << 10, "RAM"},
		{"limit above RAM", fstest.MapFS{
			"proc/meminfo":             {Data: []byte(meminfo)},
			"sys/fs/cgroup/memory.max": {Data: []byte("17179869184\n")},
		}, 3884424 << 10, "RAM"},
		{"nothing", fstest.MapFS{}, 0, ""},
	} {
		h := detectHost(tc.fs)
		if h.MemoryBytes != tc.bytes || h.MemorySource != tc.src || h.WordBits == 0 || h.Arch == "" {
			t.Errorf("%s: %+v, want %d bytes from %q", tc.name, h, tc.bytes, tc.src)
		}
	}
	if h := DetectHost(); h.WordBits != 32 && h.WordBits != 64 {
		t.Errorf("DetectHost() = %+v", h)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{512: "512 B", 1 << 20: "1 MiB", 948 << 20: "948 MiB", 1536 << 20: "1.5 GiB", gib: "1 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestMaxDBBytes fills a node whose database is capped until it refuses
// with ErrStorageFull, then checks that it still serves every acknowledged
// event and that they survive a restart.
func TestMaxDBBytes(t *testing.T) {
	dir := t.TempDir()
	const limit = 6 << 20
	cfg := func(c *Config) {
		c.Storage = Storage{MemTableSize: 1 << 20, BlockCacheSize: 1 << 20, MinFreeBytes: 1, MaxDBBytes: limit}
	}
	n := openTest(t, dir, cfg)
	raw := make([]byte, 2000) // random: incompressible
	rng := rand.NewChaCha8([32]byte{2})
	acked, refused := 0, 0
	var lastErr error
	for i := 0; i < 20000 && refused < 20; i++ {
		rng.Read(raw)
		drafts := []event.Draft{{Tags: []string{"cap"}, Payload: payload(t, raw)}, {Tags: []string{"cap"}, Payload: payload(t, raw[:1000])}}
		_, err := n.Publish(context.Background(), "com.example.cap", drafts)
		switch {
		case err == nil:
			acked += len(drafts)
		case errors.Is(err, event.ErrStorageFull):
			refused++
			lastErr = err
		default:
			t.Fatalf("after %d events: %v", acked, err)
		}
	}
	if acked < 1000 {
		t.Fatalf("only %d events written under a cap of %d bytes: %v", acked, limit, lastErr)
	}
	if refused == 0 {
		t.Fatalf("%d events written under a cap of %d bytes and never refused", acked, limit)
	}
	t.Logf("%d events acknowledged, then: %v", acked, lastErr)
	if !strings.Contains(lastErr.Error(), "maxDBBytes") {
		t.Errorf("refusal does not name the setting: %v", lastErr)
	}
	if got := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'cap'")}); len(got) != acked {
		t.Fatalf("capped node serves %d events, acknowledged %d", len(got), acked)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = openTest(t, dir, cfg)
	if got := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'cap'")}); len(got) != acked {
		t.Fatalf("after restart %d events, acknowledged %d", len(got), acked)
	}
}

func TestTuneBadger(t *testing.T) {
	base := badger.DefaultOptions("").WithValueLogFileSize(256 << 20)
	for _, tc := range []struct {
		name            string
		s               Storage
		table, vlog     int64
		indexCache      int64
		levelZeroTables int
	}{
		{"default, 64-bit", Storage{Profile: ProfileDefault, wordBits: 64}, base.BaseTableSize, 256 << 20, base.IndexCacheSize, base.NumLevelZeroTables},
		{"large, 64-bit", Storage{Profile: ProfileLarge, wordBits: 64}, base.BaseTableSize, 256 << 20, base.IndexCacheSize, base.NumLevelZeroTables},
		{"low-memory, 64-bit", Storage{Profile: ProfileLowMemory, wordBits: 64}, 512 << 10, 64 << 20, base.IndexCacheSize, 3},
		{"low-memory, 32-bit", Storage{Profile: ProfileLowMemory, wordBits: 32}, 512 << 10, 16 << 20, 4 << 20, 3},
		{"default, 32-bit", Storage{Profile: ProfileDefault, wordBits: 32}, 1 << 20, 16 << 20, 4 << 20, base.NumLevelZeroTables},
	} {
		o := tuneBadger(base, tc.s)
		if o.BaseTableSize != tc.table || o.ValueLogFileSize != tc.vlog || o.IndexCacheSize != tc.indexCache || o.NumLevelZeroTables != tc.levelZeroTables {
			t.Errorf("%s: table %d, vlog %d, index cache %d, L0 tables %d; want %d, %d, %d, %d", tc.name,
				o.BaseTableSize, o.ValueLogFileSize, o.IndexCacheSize, o.NumLevelZeroTables, tc.table, tc.vlog, tc.indexCache, tc.levelZeroTables)
		}
	}
}
