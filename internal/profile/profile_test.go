package profile

import (
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/edgelog/edgelog/internal/hugeheap"
	"github.com/edgelog/edgelog/store"
)

const gib = 1 << 30

func TestMemoryLimitFor(t *testing.T) {
	for _, tc := range []struct {
		mem  uint64
		want int64
	}{{0, 100 << 20}, {256 << 20, 64 << 20}, {640 << 20, 80 << 20}, {gib, 100 << 20}, {4 * gib, 100 << 20}} {
		if got := memoryLimitFor(store.Host{MemoryBytes: tc.mem}); got != tc.want {
			t.Errorf("memoryLimitFor(%d) = %d, want %d", tc.mem, got, tc.want)
		}
	}
}

func TestHugePagesFor(t *testing.T) {
	for _, tc := range []struct {
		profile store.Profile
		mode    hugeheap.Mode
		godebug string
		advise  bool
		why     string
	}{
		{store.ProfileLarge, hugeheap.Madvise, "", true, "heap"},
		{store.ProfileLarge, hugeheap.Madvise, "gctrace=1,disablethp=1", false, "off (GODEBUG=disablethp=1)"},
		{store.ProfileLarge, hugeheap.Madvise, "disablethp=0", true, "heap"},
		{store.ProfileLarge, hugeheap.Madvise, "disablethp=1,disablethp=0", true, "heap"},
		{store.ProfileLarge, hugeheap.Madvise, "disablethp=0, disablethp=1", false, "off (GODEBUG=disablethp=1)"},
		{store.ProfileLarge, hugeheap.Always, "", false, "always (system)"},
		{store.ProfileLarge, hugeheap.Never, "", false, "off (system: never)"},
		{store.ProfileLarge, hugeheap.Unsupported, "", false, "off (system: unsupported)"},
		{store.ProfileDefault, hugeheap.Madvise, "", false, "off"},
		{store.ProfileLowMemory, hugeheap.Madvise, "", false, "off"},
	} {
		advise, why := hugePagesFor(tc.profile, tc.mode, tc.godebug)
		if advise != tc.advise || why != tc.why {
			t.Errorf("hugePagesFor(%s, %s, %q) = %v, %q; want %v, %q", tc.profile, tc.mode, tc.godebug, advise, why, tc.advise, tc.why)
		}
	}
}

// TestPrepare: the low-memory profile sets the Go memory limit
// unless GOMEMLIMIT is set, the large profile GOGC unless GOGC is set (the
// environment always wins); the others leave both alone; the choice is
// logged.
func TestPrepare(t *testing.T) {
	origLimit, origGC := debug.SetMemoryLimit(-1), debug.SetGCPercent(-1)
	debug.SetGCPercent(origGC)
	t.Cleanup(func() { debug.SetMemoryLimit(origLimit); debug.SetGCPercent(origGC) })
	const untouched, untouchedGC = 7 << 30, 77

	// The large profile advises the heap for huge pages where the system
	// leaves that to programs.
	largeHuge := "hugePages=heap"
	if hugeheap.SystemMode() != hugeheap.Madvise {
		largeHuge = "hugePages="
	}
	for _, tc := range []struct {
		name                    string
		profile                 store.Profile
		memLimit, gogc, godebug string // environment
		wantLimit, wantGC       int64
		wantLog                 string
	}{
		{"low-memory", store.ProfileLowMemory, "", "", "", memoryLimitFor(store.DetectHost()), untouchedGC, "hugePages=off"},
		{"low-memory with GOMEMLIMIT", store.ProfileLowMemory, "300MiB", "", "", untouched, untouchedGC, `goMemLimit="GOMEMLIMIT=300MiB"`},
		{"default", store.ProfileDefault, "", "", "", untouched, untouchedGC, "hugePages=off"},
		{"large", store.ProfileLarge, "", "", "", untouched, largeGCPercent, largeHuge},
		{"large with GOGC", store.ProfileLarge, "", "200", "", untouched, untouchedGC, `goGC="GOGC=200"`},
		{"large with disablethp", store.ProfileLarge, "", "", "disablethp=1", untouched, largeGCPercent, `hugePages="off (GODEBUG=disablethp=1)"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", tc.memLimit)
			t.Setenv("GOGC", tc.gogc)
			t.Setenv("GODEBUG", tc.godebug)
			debug.SetMemoryLimit(untouched)
			debug.SetGCPercent(untouchedGC)
			var logs strings.Builder
			c, err := Prepare(store.Storage{Profile: tc.profile}, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if c.Profile != tc.profile {
				t.Errorf("chose %q, want %q", c.Profile, tc.profile)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("Go memory limit %d, want %d", got, tc.wantLimit)
			}
			if got := debug.SetGCPercent(untouchedGC); int64(got) != tc.wantGC {
				t.Errorf("GOGC %d, want %d", got, tc.wantGC)
			}
			if !strings.Contains(logs.String(), "profile="+string(tc.profile)) || !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("the choice is not logged (want %s): %s", tc.wantLog, logs.String())
			}
		})
	}
	if _, err := Prepare(store.Storage{Profile: "tiny"}, nil); err == nil {
		t.Error("an unknown profile was accepted")
	}
}
