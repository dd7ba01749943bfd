package store

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

var (
	crashCycles = flag.Int("crash.cycles", 4, "TestCrashDuringMaintenance: SIGKILLs per scenario")
	crashSeed   = flag.Uint64("crash.seed", 0, "TestCrashDuringMaintenance: the seed to replay (0: a new one)")
)

// crashChild is the environment variable that makes the test binary a
// child of TestCrashDuringMaintenance, in the scenario it names:
// "compact" publishes while it compacts the database over and over,
// "vlog" publishes large events into a stream bounded by count while it
// collects the value log over and over, "migrate" opens the database (an
// old layout, upgraded on open) and closes it. crashChild+"_DIR" is the
// data directory, crashChild+"_CYCLE" a label for payloads.
const crashChild = "EDGELOG_TEST_CRASH_CHILD"

// crashKeep is the count the "vlog" scenario's stream keeps.
const crashKeep = 300

func crashConfig(dir, mode string) Config {
	cfg := Config{DataDir: dir, Durability: DurabilitySync, Logger: slog.New(slog.DiscardHandler),
		Storage: Storage{MemTableSize: 1 << 20, BlockCacheSize: 1 << 20, MinFreeBytes: 1, MaxDBBytes: 256 << 20}}
	if mode == "vlog" {
		cfg.Streams = map[string]expiry.Retention{"default": {MaxEvents: crashKeep}}
		cfg.PruneInterval = 50 * time.Millisecond
		// Its value-log files are 64 MiB (not 256), so that a few seconds
		// of writes fill some for the collection to rewrite.
		cfg.Storage.Profile = ProfileLowMemory
		cfg.Storage.MaxDBBytes = 1 << 30
	}
	return cfg
}

// crashPayload is the payload of the event labelled id: in "vlog", large
// enough that its block goes to the value log.
func crashPayload(t testing.TB, mode, id string) []byte {
	pad := 64
	if mode == "vlog" {
		pad = 100 << 10 // above the value threshold of crashConfig's memtable
	}
	// Random, so that no encoding shrinks it below the threshold.
	b := make([]byte, pad)
	_, _ = crashRand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return payload(t, map[string]string{"id": id, "pad": string(b)})
}

var crashRand = rand.NewChaCha8([32]byte{})

// TestCrashChild is the child's body; it does nothing in a normal run. It
// prints "opening", "opened in DURATION" once the store is open, and "ack
// OFFSET ID" for every acknowledged event, and runs until it is killed.
func TestCrashChild(t *testing.T) {
	mode, dir, cycle := os.Getenv(crashChild), os.Getenv(crashChild+"_DIR"), os.Getenv(crashChild+"_CYCLE")
	if mode == "" {
		t.Skip("run by TestCrashDuringMaintenance")
	}
	fmt.Println("opening")
	start := time.Now()
	n, err := openKeyed(crashConfig(dir, mode))
	if err != nil {
		fmt.Printf("open: %v\n", err)
		os.Exit(4)
	}
	fmt.Printf("opened in %v\n", time.Since(start))
	if mode == "migrate" {
		if err := n.Close(); err != nil {
			fmt.Printf("close: %v\n", err)
			os.Exit(4)
		}
		os.Exit(0)
	}
	ctx := context.Background()
	go func() {
		for {
			switch mode {
			case "compact":
				fmt.Println("compacting")
				if err := n.Compact(ctx); err != nil {
					fmt.Printf("compact: %v\n", err)
				}
			case "vlog":
				switch err := n.st.db.RunValueLogGC(0.01); {
				case err == nil:
					fmt.Println("gc rewrote")
				case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
					time.Sleep(time.Millisecond)
				default:
					fmt.Printf("gc: %v\n", err)
					time.Sleep(time.Millisecond)
				}
			}
		}
	}()
	batch := 4
	if mode == "vlog" {
		batch = 1 // a transaction of crashConfig's memtable carries one
	}
	for i := 0; ; i++ {
		drafts := make([]event.Draft, batch)
		ids := make([]string, len(drafts))
		for j := range drafts {
			ids[j] = fmt.Sprintf("%s-%d-%d", cycle, i, j)
			drafts[j] = event.Draft{Tags: []string{"crash", "batch:" + strconv.Itoa(j)}, Payload: crashPayload(t, mode, ids[j])}
		}
		metas, err := n.Publish(ctx, "com.example.crash", drafts)
		if err != nil {
			fmt.Printf("publish: %v\n", err)
			os.Exit(5)
		}
		for j, m := range metas {
			fmt.Printf("ack %d %s\n", m.Offset, ids[j])
		}
	}
}

// skipUnderQemu skips a test that runs the test binary as a child:
// scripts/test-arm.sh (which sets EDGELOG_ARM_EVENTS) runs it under
// qemu-user, whose children do not run reliably.
func skipUnderQemu(t *testing.T) {
	t.Helper()
	if os.Getenv("EDGELOG_ARM_EVENTS") != "" {
		t.Skip("under qemu-user (scripts/test-arm.sh), whose children do not run reliably")
	}
}

// startChild starts cmd (the test binary as a child), skipping the test
// where such a binary cannot be executed (qemu-user without binfmt).
func startChild(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.ENOEXEC) {
			t.Skipf("cannot run the test binary as a child here: %v", err)
		}
		t.Fatal(err)
	}
}

// crashRun starts the child in mode on dir and SIGKILLs it after delay
// from the first line that says it is at work: "compacting", "gc
// rewrote" (a collection that moved values; the next starts at once), or
// for migrate "opening", as the upgrade runs while it opens. It returns
// the child's output lines and whether the kill came before the child
// finished by itself.
func crashRun(t *testing.T, mode, dir string, cycle int, delay time.Duration) ([]string, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChild+"="+mode, crashChild+"_DIR="+dir, crashChild+"_CYCLE="+strconv.Itoa(cycle))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	startChild(t, cmd)
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var got []string
	var timer <-chan time.Time
	deadline := time.After(3 * time.Minute)
	killed, armed := false, false
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				done = true
				break
			}
			got = append(got, l)
			if !armed && (l == "compacting" || l == "gc rewrote" || (l == "opening" && mode == "migrate")) {
				armed, timer = true, time.After(delay)
			}
		case <-timer:
			killed = cmd.Process.Signal(syscall.SIGKILL) == nil
			timer = nil
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			t.Fatalf("%s child: no output for 2 minutes; so far %q", mode, got[max(0, len(got)-5):])
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("%s child: not at work within 3 minutes; so far %q", mode, got[max(0, len(got)-5):])
		}
	}
	err = cmd.Wait()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.ExitCode() != -1 {
		t.Fatalf("%s child exited %d: %q", mode, ee.ExitCode(), got[max(0, len(got)-5):])
	}
	return got, killed && err != nil
}

// TestCrashDuringMaintenance SIGKILLs a process while Badger compacts
// (Flatten), while it collects the value log of a stream whose large events
// expire, and while an old database layout is upgraded on open; after each
// kill the store opens cleanly with every acknowledged event (or, under
// retention, every one the rule keeps) unchanged and offsets gapless, and
// the upgrade, resumed at each start, ends with the same events in the same
// order. The seed decides the kill times.
func TestCrashDuringMaintenance(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the test binary as child processes")
	}
	skipUnderQemu(t)
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: go test ./store -run TestCrashDuringMaintenance -v -args -crash.seed=%d -crash.cycles=%d)", seed, seed, *crashCycles)
	rng := rand.New(rand.NewPCG(seed, 3))
	for _, mode := range []string{"compact", "vlog"} {
		t.Run(mode, func(t *testing.T) { crashWhilePublishing(t, mode, rng) })
	}
	t.Run("migrate", func(t *testing.T) { crashWhileMigrating(t, rng) })
}

func crashWhilePublishing(t *testing.T, mode string, rng *rand.Rand) {
	dir := t.TempDir()
	acked := map[uint64]string{}
	last := int64(-1) // the highest acknowledged offset
	work := 0         // compactions begun, or value-log rewrites
	for cycle := range *crashCycles {
		delay := time.Duration(rng.IntN(300)) * time.Millisecond
		lines, killed := crashRun(t, mode, dir, cycle, delay)
		if !killed {
			t.Fatalf("cycle %d: the child was not killed: %q", cycle, lines[max(0, len(lines)-5):])
		}
		for _, l := range lines {
			var off uint64
			var id string
			if _, err := fmt.Sscanf(l, "ack %d %s", &off, &id); err == nil {
				if prev, ok := acked[off]; ok {
					t.Fatalf("offset %d acknowledged twice: %q, then %q", off, prev, id)
				}
				acked[off], last = id, max(last, int64(off))
			} else if l == "gc rewrote" || l == "compacting" {
				work++
			}
		}
		crashCheck(t, mode, dir, acked, last)
	}
	what := "compactions begun"
	if mode == "vlog" {
		what = "value-log files rewritten"
	}
	t.Logf("%s: %d SIGKILLs, %d events acknowledged, none lost; %d %s", mode, *crashCycles, len(acked), work, what)
}

// crashCheck opens the store in dir and checks the acknowledged events:
// gapless offsets up to at least the last acknowledged one, each as
// acknowledged, and under the "vlog" rule at least what it keeps. There
// the pruner may move the floor while the check reads, so the check takes
// the floor from what the query shows (never below what stats said).
func crashCheck(t *testing.T, mode, dir string, acked map[uint64]string, last int64) {
	t.Helper()
	n, err := openKeyed(crashConfig(dir, mode))
	if err != nil {
		t.Fatalf("reopening after SIGKILL: %v", err)
	}
	defer n.Close()
	s := n.DefaultStream()
	st := stats(t, n, s)
	evs := query(t, n, event.QueryRequest{Query: aql.MustParse("FROM 'crash'"), Order: event.StreamAsc})
	if len(evs) == 0 {
		if last >= 0 {
			t.Fatalf("no events after SIGKILL; offset %d was acknowledged", last)
		}
		return
	}
	first := evs[0].Offset
	if first < st.Floor || (mode != "vlog" && first != st.Floor) {
		t.Fatalf("the query starts at offset %d, the stream's floor is %d", first, st.Floor)
	}
	for k, e := range evs {
		if e.Offset != first+uint64(k) {
			t.Fatalf("offset %d where %d was due", e.Offset, first+uint64(k))
		}
		var p struct{ ID string }
		if err := event.UnmarshalCBOR(e.Payload, &p); err != nil {
			t.Fatalf("event %d: %v", e.Offset, err)
		}
		if want, ok := acked[e.Offset]; ok && p.ID != want {
			t.Fatalf("event %d is %q; %q was acknowledged there", e.Offset, p.ID, want)
		}
	}
	end := evs[len(evs)-1].Offset
	if int64(end) < last {
		t.Fatalf("the stream ends at %d after SIGKILL; offset %d was acknowledged", end, last)
	}
	if mode == "vlog" && uint64(len(evs)) < min(crashKeep, end+1) {
		t.Fatalf("the stream keeps %d events; its rule keeps %d", len(evs), crashKeep)
	}
	if mode != "vlog" && st.Floor+st.Count != end+1 {
		t.Fatalf("the query gave offsets up to %d; the stream holds %d from %d", end, st.Count, st.Floor)
	}
}

func crashWhileMigrating(t *testing.T, rng *rand.Rand) {
	dir := t.TempDir()
	const a, b = 15000, 5000
	wants := writeV2Database(t, dir, a, b, 5000)
	// How long one full upgrade takes, on a copy, to spread the kills.
	probe := t.TempDir()
	if out, err := exec.Command("cp", "-a", dir+"/.", probe).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	var full time.Duration
	lines, _ := crashRun(t, "migrate", probe, 0, time.Hour)
	for _, l := range lines {
		if d, ok := strings.CutPrefix(l, "opened in "); ok {
			full, _ = time.ParseDuration(d)
		}
	}
	if full <= 0 {
		t.Fatal("the upgrade without a kill did not say how long it took")
	}
	during := 0
	for cycle := range *crashCycles {
		delay := time.Duration(rng.Int64N(int64(full)))
		if _, killed := crashRun(t, "migrate", dir, cycle, delay); killed {
			during++
		}
	}
	n, err := openKeyed(crashConfig(dir, "migrate"))
	if err != nil {
		t.Fatalf("opening after the killed upgrades: %v", err)
	}
	defer n.Close()
	if v := getFormat(t, n); v != formatCurrent {
		t.Errorf("layout %d after the upgrade", v)
	}
	for _, w := range wants {
		if got := queryItems(t, n, w.q, w.order); !reflect.DeepEqual(got, w.items) {
			t.Errorf("%s in order %v: %d items after the killed upgrades, %d before, or different", w.q, w.order, len(got), len(w.items))
		}
	}
	t.Logf("migrate: %d SIGKILLs during the upgrade of %d events (one takes %v), then it completed with every event", during, a+b, full.Round(time.Millisecond))
}
