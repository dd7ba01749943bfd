package expiry

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgelog/edgelog/aql"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "10": 10, "10B": 10, "1kB": 1000, "1KB": 1000, "1KiB": 1024, "50MB": 50_000_000,
		"50 MiB": 50 << 20, "2GB": 2_000_000_000, "1GiB": 1 << 30, "1.5MiB": 3 << 19,
		"10 mb": 10_000_000, "2k": 2048, "1G": 1 << 30, "3gib": 3 << 30,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "1.5B", "0.1KiB", "10XB", "1.2.3MB", "10TB", "-1MB", "1e3B", "99999999999GiB"} {
		if _, err := ParseSize(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSize(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestParseAge(t *testing.T) {
	day := 24 * time.Hour
	for in, want := range map[string]time.Duration{
		"30s": 30 * time.Second, "5m": 5 * time.Minute, "36h": 36 * time.Hour, "7d": 7 * day, "2w": 14 * day,
		"1w3d12h": 10*day + 12*time.Hour, " 1d ": day,
	} {
		got, err := ParseAge(in)
		if err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "7", "d", "7y", "7D", "1.5d", "-1d", "7d x", "99999999999999w"} {
		if _, err := ParseAge(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseAge(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func i64(v int64) *int64 { return &v }

func TestSpecParse(t *testing.T) {
	r, err := Spec{MaxEvents: i64(1000), MaxSize: "50MB", MaxAge: "7d"}.Parse()
	if err != nil || r != (Retention{MaxEvents: 1000, MaxBytes: 50_000_000, MaxAge: 7 * 24 * time.Hour}) {
		t.Fatalf("Parse = %+v, %v", r, err)
	}
	if r.String() != "maxEvents=1000 maxSize=50MB maxAge=1w" {
		t.Errorf("String = %q", r.String())
	}
	if r, err := (Spec{}).Parse(); err != nil || !r.Forever() || r.String() != "forever" {
		t.Errorf("empty spec = %+v, %v", r, err)
	}
	for _, tc := range []struct {
		spec  Spec
		field string
	}{
		{Spec{MaxEvents: i64(0)}, "maxEvents"},
		{Spec{MaxEvents: i64(-5)}, "maxEvents"},
		{Spec{MaxSize: "0MB"}, "maxSize"},
		{Spec{MaxSize: "-1MB"}, "maxSize"},
		{Spec{MaxSize: "12 parsecs"}, "maxSize"},
		{Spec{MaxAge: "0s"}, "maxAge"},
		{Spec{MaxAge: "-3d"}, "maxAge"},
		{Spec{MaxAge: "3 fortnights"}, "maxAge"},
	} {
		_, err := tc.spec.Parse()
		if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("Parse(%+v) = %v; want an ErrInvalid naming %s", tc.spec, err, tc.field)
		}
	}
}

func sums(n int, size int64, ts func(i int) int64) []Summary {
	out := make([]Summary, n)
	for i := range out {
		out[i] = Summary{Offset: uint64(i), Size: size, Timestamp: ts(i)}
	}
	return out
}

func TestExpire(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	flat := func(int) int64 { return now.UnixMicro() }
	// Count: 1500 held, keep 1000, batch of 1000 read: 500 expire.
	d := Retention{MaxEvents: 1000}.Expire(State{Floor: 10, Count: 1500, Bytes: 1500}, sums(1000, 1, flat), now)
	if d.Floor != 510 || d.Expired != 500 || d.Bytes != 500 || d.More {
		t.Errorf("count: %+v", d)
	}
	// Count beyond one batch: the batch expires, More says go on.
	d = Retention{MaxEvents: 10}.Expire(State{Count: 5000}, sums(1000, 1, flat), now)
	if d.Floor != 1000 || !d.More {
		t.Errorf("count, big: %+v", d)
	}
	// Bytes: 100 events of 10 bytes, keep 250 bytes: 75 expire.
	d = Retention{MaxBytes: 250}.Expire(State{Count: 100, Bytes: 1000}, sums(100, 10, flat), now)
	if d.Floor != 75 || d.Bytes != 750 || d.More {
		t.Errorf("bytes: %+v", d)
	}
	// Age: events 0..99 are i minutes old counting down; maxAge 30m keeps the newest.
	aged := func(i int) int64 { return now.Add(-time.Duration(100-i) * time.Minute).UnixMicro() }
	d = Retention{MaxAge: 30 * time.Minute}.Expire(State{Count: 100, Bytes: 100}, sums(100, 1, aged), now)
	if d.Floor != 70 || d.More { // events 0..69 are 100..31 minutes old; 70 is exactly 30, not older
		t.Errorf("age: %+v", d)
	}
	// Age with a timestamp going back: only a prefix expires.
	back := func(i int) int64 {
		if i == 5 {
			return now.UnixMicro()
		}
		return aged(i)
	}
	d = Retention{MaxAge: 30 * time.Minute}.Expire(State{Count: 100}, sums(100, 1, back), now)
	if d.Floor != 5 {
		t.Errorf("age, clock went back: %+v", d)
	}
	// All limits: the strictest wins.
	d = Retention{MaxEvents: 90, MaxBytes: 500, MaxAge: 30 * time.Minute}.Expire(State{Count: 100, Bytes: 1000}, sums(100, 10, aged), now)
	if d.Floor != 70 {
		t.Errorf("combined: %+v", d)
	}
	// Nothing to do.
	for _, r := range []Retention{{}, {MaxEvents: 100}, {MaxBytes: 1000}, {MaxAge: time.Hour * 1000}} {
		if d := r.Expire(State{Floor: 7, Count: 100, Bytes: 1000}, sums(100, 10, aged), now); d.Expired != 0 || d.Floor != 7 || d.More {
			t.Errorf("%v: %+v", r, d)
		}
	}
	if d := (Retention{MaxEvents: 1}).Expire(State{}, nil, now); d.Expired != 0 {
		t.Errorf("empty stream: %+v", d)
	}
}

// naiveExpire is the policy written the obvious way, one event at a time,
// over the whole stream.
func naiveExpire(r Retention, st State, all []Summary, now time.Time) uint64 {
	var k uint64
	bytes := st.Bytes
	for k < uint64(len(all)) {
		count := st.Count - k
		old := r.MaxAge > 0 && all[k].Timestamp < now.Add(-r.MaxAge).UnixMicro()
		if (r.MaxEvents > 0 && count > r.MaxEvents) || (r.MaxBytes > 0 && bytes > r.MaxBytes) || old {
			bytes -= all[k].Size
			k++
			continue
		}
		break
	}
	return st.Floor + k
}

// FuzzExpire checks Expire, run batch after batch until More is false,
// against naiveExpire, and its invariants: the floor never goes back and
// never passes what is held, and Bytes sums what expired.
func FuzzExpire(f *testing.F) {
	f.Add(uint16(1500), uint16(1000), uint32(0), uint32(0), uint16(100), uint8(10), int64(5), uint16(70))
	f.Add(uint16(200), uint16(0), uint32(700), uint32(0), uint16(33), uint8(3), int64(1), uint16(0))
	f.Add(uint16(50), uint16(0), uint32(0), uint32(600), uint16(7), uint8(1), int64(-3), uint16(9))
	f.Fuzz(func(t *testing.T, count, maxEvents uint16, maxBytes, maxAgeSec uint32, batch uint16, size uint8, step int64, jitter uint16) {
		if count > 5000 || batch == 0 {
			return
		}
		now := time.Unix(1_000_000, 0)
		r := Retention{MaxEvents: uint64(maxEvents), MaxBytes: int64(maxBytes), MaxAge: time.Duration(maxAgeSec) * time.Second}
		all := make([]Summary, count)
		var total int64
		ts := now.Add(-time.Duration(count) * time.Second).UnixMicro()
		for i := range all {
			ts += step * 1e6
			if jitter > 0 && i%int(jitter) == 0 {
				ts -= int64(jitter) * 1e6
			}
			s := int64(size) + int64(i%7)
			all[i] = Summary{Offset: 100 + uint64(i), Size: s, Timestamp: ts}
			total += s
		}
		st := State{Floor: 100, Count: uint64(count), Bytes: total}
		want := naiveExpire(r, st, all, now)
		for range 10000 {
			k := int(st.Floor - 100)
			end := min(k+int(batch), len(all))
			d := r.Expire(st, all[k:end], now)
			if d.Floor < st.Floor || d.Floor > st.Floor+st.Count || d.Expired != d.Floor-st.Floor {
				t.Fatalf("%v: bad decision %+v for %+v", r, d, st)
			}
			var b int64
			for _, s := range all[k : k+int(d.Expired)] {
				b += s.Size
			}
			if b != d.Bytes {
				t.Fatalf("Bytes %d, want %d", d.Bytes, b)
			}
			st = State{Floor: d.Floor, Count: st.Count - d.Expired, Bytes: st.Bytes - d.Bytes}
			if !d.More {
				break
			}
		}
		if st.Floor != want {
			t.Fatalf("%v over %d events: floor %d, naive %d", r, count, st.Floor, want)
		}
	})
}

func TestRouter(t *testing.T) {
	c := Config{
		Routes: []Route{
			{From: "'telemetry' & 'debug'", Into: "debug"},
			{From: "FROM 'telemetry'", Into: "telemetry"},
			{From: "appId(com.example.keep)", Into: DefaultStream},
			{From: "allEvents", Into: "rest"},
		},
		Streams: map[string]Retention{"telemetry": {MaxEvents: 10}, "debug": {MaxAge: time.Hour}, "rest": {}},
	}
	r, err := NewRouter(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tags []string
		app  string
		want string
	}{
		{[]string{"telemetry", "debug"}, "a", "debug"},
		{[]string{"telemetry"}, "a", "telemetry"},
		{[]string{"x"}, "com.example.keep", DefaultStream},
		{[]string{"x"}, "a", "rest"},
	} {
		if got := r.Route(&aql.Subject{Tags: tc.tags, AppID: tc.app}); got != tc.want {
			t.Errorf("Route(%v, %s) = %s, want %s", tc.tags, tc.app, got, tc.want)
		}
	}
	if got := c.Names(); strings.Join(got, ",") != "debug,rest,telemetry" {
		t.Errorf("Names = %v", got)
	}
	var none *Router
	if none.Route(&aql.Subject{}) != DefaultStream || !none.Empty() {
		t.Error("nil router")
	}
}

func TestRouterErrors(t *testing.T) {
	ok := map[string]Retention{"t": {}}
	for _, tc := range []struct {
		c     Config
		field string
	}{
		{Config{Routes: []Route{{From: "'a'", Into: "nope"}}, Streams: ok}, "routes[0].into"},
		{Config{Routes: []Route{{From: "'a'", Into: "t"}, {From: "'a", Into: "t"}}, Streams: ok}, "routes[1].from"},
		{Config{Routes: []Route{{From: "", Into: "t"}}, Streams: ok}, "routes[0].from"},
		{Config{Routes: []Route{{From: "'a'"}}, Streams: ok}, "routes[0].into"},
		{Config{Streams: map[string]Retention{"9lives": {}}}, "streams.9lives"},
		{Config{Streams: map[string]Retention{"t": {MaxBytes: -1}}}, "streams.t.maxSize"},
	} {
		_, err := NewRouter(tc.c)
		if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), tc.field) {
			t.Errorf("NewRouter(%+v) = %v; want an error naming %s", tc.c, err, tc.field)
		}
	}
}

func FuzzParseUnits(f *testing.F) {
	for _, s := range []string{"50MB", "1.5GiB", "7d", "1w3d12h", "", "-1", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSize(s); err == nil {
			if n < 0 {
				t.Fatalf("ParseSize(%q) = %d", s, n)
			}
			if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
				t.Fatalf("FormatSize(%d) = %q does not parse back: %d, %v", n, FormatSize(n), back, err)
			}
		}
		if d, err := ParseAge(s); err == nil {
			if d < 0 {
				t.Fatalf("ParseAge(%q) = %v", s, d)
			}
			if back, err := ParseAge(FormatAge(d)); err != nil || (d >= time.Second && back != d) {
				t.Fatalf("FormatAge(%v) = %q does not parse back: %v, %v", d, FormatAge(d), back, err)
			}
		}
	})
}
