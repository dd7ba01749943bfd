package lamport

import (
	"errors"
	"iter"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func TestClockReserveObserve(t *testing.T) {
	c := NewClock(10)
	if got, _ := c.Reserve(3); got != 11 {
		t.Fatalf("Reserve(3) = %d, want 11", got)
	}
	if c.Now() != 13 {
		t.Fatalf("Now = %d, want 13", c.Now())
	}
	c.Observe(5) // older: ignored
	if c.Now() != 13 {
		t.Fatalf("Observe(5) moved the clock back to %d", c.Now())
	}
	c.Observe(100)
	if got, _ := c.Reserve(1); got != 101 {
		t.Fatalf("Reserve after Observe(100) = %d, want 101", got)
	}
	if got, _ := c.Reserve(0); got != 102 || c.Now() != 101 {
		t.Fatalf("Reserve(0) = %d (now %d), want 102 (now 101)", got, c.Now())
	}
}

func TestClockExhausted(t *testing.T) {
	c := NewClock(math.MaxUint64 - 1)
	if _, err := c.Reserve(2); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Reserve past MaxUint64: err = %v, want ErrExhausted", err)
	}
	if got, err := c.Reserve(1); err != nil || got != math.MaxUint64 {
		t.Fatalf("Reserve(1) = %d, %v", got, err)
	}
	if _, err := c.Reserve(0); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Reserve(0) at max: err = %v", err)
	}
}

func TestClockRollback(t *testing.T) {
	c := NewClock(0)
	first, _ := c.Reserve(5)
	if !c.Rollback(first, 5) || c.Now() != 0 {
		t.Fatalf("rollback of the last reservation failed, now %d", c.Now())
	}
	first, _ = c.Reserve(5)
	c.Observe(50)
	if c.Rollback(first, 5) || c.Now() != 50 {
		t.Fatalf("rollback after a later Observe must not move the clock, now %d", c.Now())
	}
}

func TestClockConcurrentNeverRepeats(t *testing.T) {
	c := NewClock(0)
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				v, _ := c.Reserve(1)
				c.Observe(v - 1)
				mu.Lock()
				if seen[v] {
					t.Errorf("time %d handed out twice", v)
				}
				seen[v] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if c.Now() != 8000 {
		t.Fatalf("Now = %d, want 8000", c.Now())
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b EventKey
		want int
	}{
		{EventKey{1, "b", 9}, EventKey{2, "a", 0}, -1},
		{EventKey{2, "a", 9}, EventKey{2, "b", 0}, -1},
		{EventKey{2, "a", 1}, EventKey{2, "a", 2}, -1},
		{EventKey{2, "a", 2}, EventKey{2, "a", 2}, 0},
		{EventKey{2, "ab", 0}, EventKey{2, "a", 5}, 1},
		{EventKey{3, "", 0}, EventKey{2, "z", 5}, 1},
	}
	for _, tt := range tests {
		if got := Compare(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%v, %v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := Compare(tt.b, tt.a); got != -tt.want {
			t.Errorf("Compare(%v, %v) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func seqOf(keys []EventKey) iter.Seq2[EventKey, error] {
	return func(yield func(EventKey, error) bool) {
		for _, k := range keys {
			if !yield(k, nil) {
				return
			}
		}
	}
}

func ident(k EventKey) EventKey { return k }

// checkMerge merges inputs (each sorted) and compares with a plain sort of
// everything.
func checkMerge(t *testing.T, inputs [][]EventKey, desc bool) {
	t.Helper()
	var all []EventKey
	seqs := make([]iter.Seq2[EventKey, error], len(inputs))
	for i, in := range inputs {
		seqs[i] = seqOf(in)
		all = append(all, in...)
	}
	slices.SortStableFunc(all, func(a, b EventKey) int {
		if desc {
			return Compare(b, a)
		}
		return Compare(a, b)
	})
	var got []EventKey
	for k, err := range Merge(ident, desc, seqs...) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	if !slices.Equal(got, all) {
		t.Fatalf("merge of %v (desc=%v)\n got %v\nwant %v", inputs, desc, got, all)
	}
}

func TestMergeTable(t *testing.T) {
	a := []EventKey{{1, "a", 0}, {4, "a", 1}, {9, "a", 2}}
	b := []EventKey{{2, "b", 0}, {4, "b", 1}}
	c := []EventKey{{4, "0", 0}}
	checkMerge(t, nil, false)
	checkMerge(t, [][]EventKey{nil, nil}, false)
	checkMerge(t, [][]EventKey{a}, false)
	checkMerge(t, [][]EventKey{a, b, c}, false)
	checkMerge(t, [][]EventKey{rev(a), rev(b), rev(c)}, true)
}

func rev(in []EventKey) []EventKey {
	out := slices.Clone(in)
	slices.Reverse(out)
	return out
}

func TestMergeStopsEarlyAndStopsInputs(t *testing.T) {
	stopped := 0
	mk := func(n int) iter.Seq2[EventKey, error] {
		return func(yield func(EventKey, error) bool) {
			defer func() { stopped++ }()
			for i := range n {
				if !yield(EventKey{uint64(i), "s", uint64(i)}, nil) {
					return
				}
			}
		}
	}
	n := 0
	for range Merge(ident, false, mk(10), mk(10), mk(10)) {
		if n++; n == 4 {
			break
		}
	}
	if stopped != 3 {
		t.Fatalf("%d of 3 inputs were stopped", stopped)
	}
}

func TestMergeError(t *testing.T) {
	boom := errors.New("boom")
	bad := func(yield func(EventKey, error) bool) {
		if yield(EventKey{5, "x", 0}, nil) {
			yield(EventKey{}, boom)
		}
	}
	var got []EventKey
	var gotErr error
	for k, err := range Merge(ident, false, seqOf([]EventKey{{1, "a", 0}, {7, "a", 1}}), bad) {
		if err != nil {
			gotErr = err
			continue
		}
		got = append(got, k)
	}
	if !errors.Is(gotErr, boom) {
		t.Fatalf("err = %v, want boom", gotErr)
	}
	if len(got) != 2 {
		t.Fatalf("before the error got %v, want the keys up to 5", got)
	}
}

// randomInputs makes n sorted streams as a node would see them: each stream
// has increasing lamports; lamports collide across streams often.
func randomInputs(r *rand.Rand, n int) [][]EventKey {
	inputs := make([][]EventKey, n)
	for i := range inputs {
		l := uint64(r.IntN(5))
		name := string(rune('a' + r.IntN(26)))
		for off := range r.IntN(20) {
			l += uint64(r.IntN(3)) + 1
			inputs[i] = append(inputs[i], EventKey{l, name, uint64(off)})
		}
	}
	return inputs
}

func TestMergeProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		in := randomInputs(r, r.IntN(8))
		checkMerge(t, in, false)
		for i := range in {
			in[i] = rev(in[i])
		}
		checkMerge(t, in, true)
	}
}

func FuzzMerge(f *testing.F) {
	f.Add(uint64(1), uint64(2), uint8(3))
	f.Add(uint64(42), uint64(0), uint8(9))
	f.Fuzz(func(t *testing.T, s1, s2 uint64, n uint8) {
		r := rand.New(rand.NewPCG(s1, s2))
		checkMerge(t, randomInputs(r, int(n%16)), false)
	})
}

func BenchmarkMerge(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	in := make([][]EventKey, 8)
	for i := range in {
		for j := range 1000 {
			in[i] = append(in[i], EventKey{uint64(j*8 + r.IntN(8)), "s", uint64(j)})
		}
	}
	b.ResetTimer()
	for b.Loop() {
		seqs := make([]iter.Seq2[EventKey, error], len(in))
		for i := range in {
			seqs[i] = seqOf(in[i])
		}
		for range Merge(ident, false, seqs...) {
		}
	}
}
