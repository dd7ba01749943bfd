package expiry

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid marks a bad setting; errors wrapping it name the field.
var ErrInvalid = errors.New("invalid setting")

// sizeUnits are the canonical size units (FormatSize writes them).
var sizeUnits = map[string]int64{
	"B":   1,
	"kB":  1000,
	"KiB": 1 << 10,
	"MB":  1000 * 1000,
	"MiB": 1 << 20,
	"GB":  1000 * 1000 * 1000,
	"GiB": 1 << 30,
}

// sizeUnitsFold are the units ParseSize accepts, by their lower case: the
// canonical ones in any case, and K, M and G for KiB, MiB and GiB.
var sizeUnitsFold = map[string]int64{
	"b":  1,
	"kb": 1000, "mb": 1000 * 1000, "gb": 1000 * 1000 * 1000,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
}

// ParseSize parses a byte size: a non-negative number (decimals allowed if
// the result is a whole number of bytes) and a unit: B, kB, KiB, MB, MiB,
// GB, GiB in any case, or K, M, G for KiB, MiB, GiB; no unit means bytes.
// Spaces between number and unit are allowed. Every size setting of
// edgelog (limits, storage, retention) is parsed by it.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	num, unit := s, "b"
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	if num == "" {
		return 0, fmt.Errorf("%w: size %q: want a number and a unit (B, kB, KiB, MB, MiB, GB, GiB), like 50MB", ErrInvalid, s)
	}
	f, ok := sizeUnitsFold[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("%w: size %q: unknown unit %q (want B, kB, KiB, MB, MiB, GB or GiB)", ErrInvalid, s, unit)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: size %q: bad number %q", ErrInvalid, s, num)
	}
	b := v * float64(f)
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("%w: size %q is too large", ErrInvalid, s)
	}
	if b != math.Trunc(b) {
		return 0, fmt.Errorf("%w: size %q is not a whole number of bytes", ErrInvalid, s)
	}
	return int64(b), nil
}

// FormatSize renders n bytes in the largest binary or decimal unit that
// keeps it exact, so that ParseSize(FormatSize(n)) == n.
func FormatSize(n int64) string {
	for _, u := range []string{"GiB", "GB", "MiB", "MB", "KiB", "kB"} {
		if f := sizeUnits[u]; n >= f && n%f == 0 {
			return strconv.FormatInt(n/f, 10) + u
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// ageUnits are the accepted duration suffixes.
var ageUnits = map[byte]time.Duration{
	's': time.Second,
	'm': time.Minute,
	'h': time.Hour,
	'd': 24 * time.Hour,
	'w': 7 * 24 * time.Hour,
}

// ParseAge parses a duration made of whole numbers with the units s, m, h,
// d (24 h) and w (7 d), like "7d", "36h" or "1w3d12h".
func ParseAge(s string) (time.Duration, error) {
	src := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("%w: duration is empty: want a number and a unit (s, m, h, d, w), like 7d", ErrInvalid)
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("%w: duration %q: want whole numbers with units (s, m, h, d, w), like 7d or 1d12h", ErrInvalid, src)
		}
		if i == len(s) {
			return 0, fmt.Errorf("%w: duration %q: number %s has no unit (s, m, h, d, w)", ErrInvalid, src, s[:i])
		}
		unit, ok := ageUnits[s[i]]
		if !ok {
			return 0, fmt.Errorf("%w: duration %q: unknown unit %q (want s, m, h, d or w)", ErrInvalid, src, s[i:i+1])
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n > int64(math.MaxInt64/unit) || total > math.MaxInt64-time.Duration(n)*unit {
			return 0, fmt.Errorf("%w: duration %q is too long", ErrInvalid, src)
		}
		total += time.Duration(n) * unit
		s = s[i+1:]
	}
	return total, nil
}

// FormatAge renders d with the units of ParseAge, largest first; zero is "0s".
func FormatAge(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		c byte
		d time.Duration
	}{{'w', ageUnits['w']}, {'d', ageUnits['d']}, {'h', time.Hour}, {'m', time.Minute}, {'s', time.Second}} {
		if d >= u.d {
			b.WriteString(strconv.FormatInt(int64(d/u.d), 10))
			b.WriteByte(u.c)
			d %= u.d
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}

// FormatSizeApprox renders n bytes for people: "512B", "1.5KiB", "50.0MiB".
func FormatSizeApprox(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	v, u := float64(n)/unit, "KiB"
	for _, next := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, u = v/unit, next
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + u
}
