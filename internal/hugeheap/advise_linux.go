package hugeheap

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/metrics"
	"sync"
	"time"
	"unsafe"

	"github.com/edgelog/edgelog/internal/memtrim"
	"golang.org/x/sys/unix"
)

const modeFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// SystemMode returns the system's transparent huge page setting.
func SystemMode() Mode {
	b, err := os.ReadFile(modeFile)
	if err != nil {
		return Unsupported
	}
	return ParseMode(b)
}

// The advisor checks the runtime's mapped memory every minInterval while
// it grows, backing off to maxInterval while it does not: a heap that
// grows is advised within minInterval, before most of a new piece is
// touched, and an idle node wakes once a second.
const (
	minInterval = 5 * time.Millisecond
	maxInterval = time.Second
)

var (
	// anchor is an object on the heap: HeapRanges finds the heap by it.
	anchor = new([64]byte)

	mu      sync.Mutex
	running bool
)

// Start advises the Go heap for huge pages: its mappings now, at once,
// and then, in a goroutine, each piece the runtime maps as the heap grows,
// until stop is called. It needs the system mode Madvise; else it returns
// ErrNotAdvised. At most one advisor runs in a process: while one runs,
// Start returns a stop that does nothing. log may be nil.
func Start(log *slog.Logger) (stop func(), err error) {
	if m := SystemMode(); m != Madvise {
		return nil, fmt.Errorf("%w: transparent huge pages are %s", ErrNotAdvised, m)
	}
	mu.Lock()
	defer mu.Unlock()
	if running {
		return func() {}, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &advisor{log: log, advised: map[Range]bool{}}
	if err := a.advise(); err != nil {
		return nil, err
	}
	running = true
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		a.run(done)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
			mu.Lock()
			running = false
			mu.Unlock()
		})
	}, nil
}

type advisor struct {
	log     *slog.Logger
	advised map[Range]bool // the heap's ranges as last advised
}

func (a *advisor) run(done <-chan struct{}) {
	sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	metrics.Read(sample)
	mapped := sample[0].Value.Uint64()
	interval := minInterval
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v != mapped {
			mapped, interval = v, minInterval
			if err := a.advise(); err != nil {
				a.log.Warn("huge pages for the heap: stopped advising", slog.Any("err", err))
				return
			}
		} else {
			interval = min(2*interval, maxInterval)
		}
		t.Reset(interval)
	}
}

// advise advises the heap's writable ranges that changed since the last
// call. The runtime never unmaps heap memory, so a range read from
// /proc/self/maps is still the heap's when it is advised.
func (a *advisor) advise() error {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("hugeheap: %w", err)
	}
	ms, err := memtrim.ParseSmaps(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("hugeheap: %w", err)
	}
	rs := HeapRanges(ms, uint64(uintptr(unsafe.Pointer(anchor))))
	if len(rs) == 0 {
		return errors.New("hugeheap: the heap is not among this process's mappings")
	}
	now := make(map[Range]bool, len(rs))
	for _, r := range rs {
		now[r] = true
		if a.advised[r] {
			continue
		}
		_, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(r.Start), uintptr(r.End-r.Start), unix.MADV_HUGEPAGE)
		if e != 0 && e != unix.ENOMEM { // ENOMEM: part of the range is not mapped; the rest is advised
			return fmt.Errorf("hugeheap: madvise: %w", e)
		}
	}
	a.advised = now
	return nil
}
