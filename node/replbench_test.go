package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/internal/eventtest"
	"github.com/edgelog/edgelog/internal/profile"
	"github.com/edgelog/edgelog/replicate"
	"github.com/edgelog/edgelog/store"
)

// Replication benchmarks (issue 3). Each does a bounded amount of work per
// iteration; run them with -benchtime 1x (scripts/bench.sh does). Smaller
// counts for quick runs come from the environment:
//
//	EDGELOG_BENCH_CATCHUP_EVENTS   events B pulls from A (default 1000000)
//	EDGELOG_BENCH_LATENCY_EVENTS   events published at 1000/s (default 2000)
//	EDGELOG_BENCH_CONVERGE_EVENTS  events per node of the 10-node cluster (default 1000)
//	EDGELOG_BENCH_PULL_MEMTABLE_MB BenchmarkCatchUp's pulling node's memtable size (default: its profile's)
//	EDGELOG_BENCH_WARM_HEAP        BenchmarkCatchUp's pulling node reuses the heap the source fill left (see coldHeap)
//
// EDGELOG_BENCH_DEBUG=1 makes BenchmarkLiveLatency log when events arrived
// (in bursts) and, every 5 ms, what the receiver held and how far it knew
// it was behind: a stall shows as a growing toReplicate with nothing stored.
// EDGELOG_BENCH_PULL_PROFILE and EDGELOG_BENCH_PEER_PROFILE name files for
// CPU profiles of BenchmarkCatchUp's pulling node and of its serving
// process.

func envCount(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 100_000_000 {
		b.Fatalf("%s=%q: want a count from 1 to 100000000", name, s)
	}
	return n
}

// replBenchPeerEnv names the data directory TestReplBenchPeer serves.
const replBenchPeerEnv = "EDGELOG_REPLBENCH_PEER"

// TestReplBenchPeer is the second process of BenchmarkCatchUp, which runs
// the test binary again with only this test and EDGELOG_REPLBENCH_PEER set
// to a data directory. It serves that directory's node over libp2p on
// loopback, and a raw TCP baseline that sends as many bytes as a client
// asks for, prints both addresses, and stops when its stdin closes.
// Without the variable it skips.
func TestReplBenchPeer(t *testing.T) {
	dir := os.Getenv(replBenchPeerEnv)
	if dir == "" {
		t.Skip("the serving process of BenchmarkCatchUp")
	}
	// Set up as `edgelog run` sets itself up.
	if _, err := profile.Prepare(store.Storage{}, nil); err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), Config{Store: store.Config{DataDir: dir, Durability: store.DurabilityAsync, Logger: slog.New(slog.DiscardHandler)},
		Replication: &Replication{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Swarm: "replbench"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	// The source was filled moments ago; a serving node has long
	// compacted its tables, so this one does before it serves, lest its
	// compactions share the two cores with the pull being measured.
	if err := n.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Badger may still start a compaction right after; wait (at most a
	// minute) until its tables stay the same for two seconds.
	tables := func() string {
		files, _ := os.ReadDir(filepath.Join(dir, "db"))
		return fmt.Sprint(files)
	}
	t0 := time.Now()
	for last, since := tables(), time.Now(); time.Since(since) < 2*time.Second && time.Since(t0) < time.Minute; {
		time.Sleep(100 * time.Millisecond)
		if now := tables(); now != last {
			last, since = now, time.Now()
		}
	}
	defer cpuProfile(t, "EDGELOG_BENCH_PEER_PROFILE")()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveRaw(ln)
	fmt.Printf("ADDR %s\nRAW %s\n", n.ListenAddrs()[0], ln.Addr())
	io.Copy(io.Discard, os.Stdin) // until the benchmark closes it (or dies)
}

// serveRaw answers each connection on ln: it reads a length (8 bytes, big
// endian) and writes that many bytes.
func serveRaw(ln net.Listener) {
	buf := make([]byte, 1<<20)
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			var hdr [8]byte
			if _, err := io.ReadFull(conn, hdr[:]); err != nil {
				return
			}
			for left := int64(binary.BigEndian.Uint64(hdr[:])); left > 0; {
				k, err := conn.Write(buf[:min(left, int64(len(buf)))])
				if err != nil {
					return
				}
				left -= int64(k)
			}
		}()
	}
}

// catchUpSource returns a closed data directory whose node holds n events
// of 100-byte payloads with two tags each, published in batches of 1000.
func catchUpSource(b *testing.B, n int) string {
	dir := b.TempDir()
	src, err := Open(context.Background(), Config{Store: store.Config{DataDir: dir, Durability: store.DurabilityAsync, Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		b.Fatal(err)
	}
	drafts := make([]event.Draft, 0, 1000)
	for i := 0; i < n; i++ {
		drafts = append(drafts, event.Draft{Tags: []string{"bench", fmt.Sprintf("machine:%d", i%100)}, Payload: eventtest.Telemetry(b, i)})
		if len(drafts) == cap(drafts) || i == n-1 {
			if _, err := src.Publish(context.Background(), "com.example.bench", drafts); err != nil {
				b.Fatal(err)
			}
			drafts = drafts[:0]
		}
	}
	if err := src.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// countingConn answers a pull request from memory and counts the bytes
// written back.
type countingConn struct {
	r *bytes.Reader
	n int64
}

func (c *countingConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *countingConn) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// wireBytes opens the node in dir alone and returns its default stream and
// how many bytes the pull protocol sends for the whole stream.
func wireBytes(b *testing.B, dir string, events int) (event.StreamID, int64) {
	n, err := Open(context.Background(), Config{Store: store.Config{DataDir: dir, Durability: store.DurabilityAsync, Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	var req bytes.Buffer
	pr := replicate.PullRequest{Stream: n.DefaultStream(), From: -1, To: uint64(events - 1)}
	if err := replicate.WriteRequest(&req, pr); err != nil {
		b.Fatal(err)
	}
	conn := &countingConn{r: bytes.NewReader(req.Bytes())}
	if _, err := replicate.ServeBlocks(context.Background(), n.Store, conn, replicate.Limits{}); err != nil {
		b.Fatal(err)
	}
	return n.DefaultStream(), conn.n
}

// peerProcess is TestReplBenchPeer running in a second process.
type peerProcess struct {
	addr, raw string
	pid       int
}

func startPeerProcess(b *testing.B, dir string) peerProcess {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestReplBenchPeer$", "-test.bench=^$", "-test.count=1", "-test.timeout=1h")
	cmd.Env = append(os.Environ(), replBenchPeerEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cancel() // kills it
			<-done
		}
		cancel()
	})
	p := peerProcess{pid: cmd.Process.Pid}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // the addresses were read long ago: just drain
			}
		}
		close(lines)
	}()
	deadline := time.After(2 * time.Minute)
	for p.addr == "" || p.raw == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				b.Fatal("the serving process ended before printing its addresses")
			}
			if a, ok := strings.CutPrefix(l, "ADDR "); ok {
				p.addr = a
			}
			if a, ok := strings.CutPrefix(l, "RAW "); ok {
				p.raw = a
			}
		case <-deadline:
			b.Fatal("the serving process printed no addresses within 2 minutes")
		}
	}
	return p
}

// rawCopy reads n bytes from the raw server over one loopback TCP
// connection and returns how long that took.
func rawCopy(b *testing.B, addr string, n int64) time.Duration {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Minute))
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(n))
	if _, err := conn.Write(hdr[:]); err != nil {
		b.Fatal(err)
	}
	got, err := io.CopyBuffer(io.Discard, conn, make([]byte, 256<<10))
	if err != nil || got != n {
		b.Fatalf("raw copy: %d of %d bytes, %v", got, n, err)
	}
	return time.Since(start)
}

// BenchmarkCatchUp: node B, empty, pulls every event of node A, which runs
// in a second process, over loopback TCP; B stores durably (sync). It
// reports events/s from B's start until it holds all, next to two
// baselines measured in the same run: raw-events/s, a plain loopback TCP
// copy of as many bytes as the pull protocol sends for those events; and
// badger-events/s, Badger alone (SyncWrites) storing the entries B ended up
// with, in transactions of about B's size: the rate B's storage allows.
func BenchmarkCatchUp(b *testing.B) {
	events := envCount(b, "EDGELOG_BENCH_CATCHUP_EVENTS", 1_000_000)
	var storage store.Storage
	if mb := envCount(b, "EDGELOG_BENCH_PULL_MEMTABLE_MB", 0); mb > 0 {
		storage.MemTableSize = int64(mb) << 20
	}
	dir := catchUpSource(b, events)
	stream, size := wireBytes(b, dir, events)
	peer := startPeerProcess(b, dir)
	// B runs as `edgelog run` would set it up (the profile's collector
	// settings), and so does the Badger baseline, in the same process.
	gcPercent, memLimit := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(gcPercent)
	defer func() { debug.SetGCPercent(gcPercent); debug.SetMemoryLimit(memLimit) }()
	if _, err := profile.Prepare(storage, nil); err != nil {
		b.Fatal(err)
	}
	var pulled, raw, stored, pullCPU, serveCPU time.Duration
	var peakRSS, pullFaults, anonKB, hugeKB, fileKB int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		raw += rawCopy(b, peer.raw, size)
		b.StopTimer()
		bdir := b.TempDir()
		stopProfile := cpuProfile(b, "EDGELOG_BENCH_PULL_PROFILE")
		coldHeap()
		b.StartTimer()
		start := time.Now()
		useB, useA := procUsage("self"), procUsage(strconv.Itoa(peer.pid))
		n, err := Open(context.Background(), Config{Store: store.Config{DataDir: bdir, Durability: store.DurabilitySync, Storage: storage, Logger: slog.New(slog.DiscardHandler)},
			Replication: &Replication{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Swarm: "replbench", Bootstrap: []string{peer.addr}}})
		if err != nil {
			b.Fatal(err)
		}
		waitHolds(b, n, stream, uint64(events-1), 20*time.Minute)
		pulled += time.Since(start)
		nowB := procUsage("self")
		pullCPU += nowB.cpu - useB.cpu
		pullFaults += nowB.faults - useB.faults
		serveCPU += procUsage(strconv.Itoa(peer.pid)).cpu - useA.cpu
		b.StopTimer()
		peakRSS = max(peakRSS, procKB("status", "VmHWM"))
		// Where B's memory is at the end of the pull: anonymous (the heap,
		// most of it), of that on huge pages, and pages of mapped files
		// (Badger's tables and memtable logs).
		anonKB, hugeKB, fileKB = procKB("status", "RssAnon"), procKB("smaps_rollup", "AnonHugePages"), procKB("status", "RssFile")
		stopProfile()
		if err := n.Close(); err != nil {
			b.Fatal(err)
		}
		kvs := dumpDB(b, bdir)
		coldHeap()
		stored += storeRaw(b, kvs, n.Storage())
		b.StartTimer()
	}
	rate := float64(events*b.N) / pulled.Seconds()
	rawRate := float64(events*b.N) / raw.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(rawRate, "raw-events/s")
	b.ReportMetric(float64(size)/float64(events), "wire-bytes/event")
	b.ReportMetric(rate/rawRate, "x-raw")
	badgerRate := float64(events*b.N) / stored.Seconds()
	b.ReportMetric(badgerRate, "badger-events/s")
	b.ReportMetric(rate/badgerRate, "x-badger")
	// CPU time per million events, steadier than the rate on a shared
	// machine: B's whole process, and A's.
	if pullCPU > 0 && serveCPU > 0 {
		per := float64(events*b.N) / 1e6
		b.ReportMetric(pullCPU.Seconds()/per, "pull-cpu-s/Mev")
		b.ReportMetric(serveCPU.Seconds()/per, "serve-cpu-s/Mev")
		b.ReportMetric(float64(pullFaults)/per/1000, "pull-kfaults/Mev")
		b.ReportMetric(float64(faultCost(b).Nanoseconds())/1000, "fault-us")
	}
	// What the profile's memtables cost: the pulling process's peak
	// resident size during the pull (its heap, memtables, caches and the
	// pages of Badger's mapped files).
	if peakRSS > 0 {
		b.ReportMetric(float64(peakRSS)/1024, "pull-peak-rss-MiB")
		b.ReportMetric(float64(anonKB)/1024, "pull-anon-MiB")
		b.ReportMetric(float64(hugeKB)/1024, "pull-anon-huge-MiB")
		b.ReportMetric(float64(fileKB)/1024, "pull-file-MiB")
	}
}

// coldHeap returns this process's unused heap to the system, as a node
// process that has just started holds none; else the measured part would
// reuse the pages the source fill left, while the first touch of a page is
// a large part of storing on some machines (pull-kfaults/Mev, fault-us).
// With EDGELOG_BENCH_WARM_HEAP set it keeps them: a node that has run for
// a while and catches up after a partition. Either way it resets the peak
// resident size (VmHWM) to what is resident now, so that the peak read
// next is the measured part's.
func coldHeap() {
	if os.Getenv("EDGELOG_BENCH_WARM_HEAP") == "" {
		debug.FreeOSMemory()
	}
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// faultCost returns the time one first touch of a page of fresh memory
// takes on this machine: commonly about a microsecond, far more in some
// virtual machines (12-17 us where the README's figures come from).
func faultCost(b *testing.B) time.Duration {
	const size = 64 << 20
	page := os.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		b.Fatal(err)
	}
	defer syscall.Munmap(mem)
	start := time.Now()
	for i := 0; i < size; i += page {
		mem[i] = 1
	}
	return time.Since(start) / time.Duration(size/page)
}

// procKB returns a field ("VmHWM") of a /proc file of this process in the
// form "VmHWM:  1234 kB" (status, smaps_rollup), in KiB; 0 if missing.
func procKB(file, field string) int64 {
	b, err := os.ReadFile("/proc/self/" + file)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

// dumpDB returns every key and value of the Badger database of the
// closed node in dir.
func dumpDB(b *testing.B, dir string) [][2][]byte {
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "db")).WithReadOnly(true).WithLogger(nil))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var kvs [][2][]byte
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			kvs = append(kvs, [2][]byte{it.Item().KeyCopy(nil), v})
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return kvs
}

// storeRaw writes kvs into a new Badger database with SyncWrites and the
// sizes of st (the pulling node's, resolved), in transactions of about 512 KiB (what
// the pulling node commits at a time), and returns how long that took: the
// pull's baseline, storing the same entries and bytes without replication.
func storeRaw(b *testing.B, kvs [][2][]byte, st store.Storage) time.Duration {
	db, err := badger.Open(badger.DefaultOptions(b.TempDir()).WithLogger(nil).WithSyncWrites(true).
		WithDetectConflicts(false).WithMemTableSize(st.MemTableSize).WithBlockCacheSize(st.BlockCacheSize).WithMetricsEnabled(false))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	txn := db.NewTransaction(true)
	size := 0
	for _, kv := range kvs {
		if err := txn.Set(kv[0], kv[1]); err != nil {
			b.Fatal(err)
		}
		if size += len(kv[0]) + len(kv[1]); size >= 512<<10 {
			if err := txn.Commit(); err != nil {
				b.Fatal(err)
			}
			txn, size = db.NewTransaction(true), 0
		}
	}
	if err := txn.Commit(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// usage is what a process has used so far, from /proc/PID/stat.
type usage struct {
	cpu    time.Duration // user and system CPU time
	faults int64         // minor page faults: first touches of memory
}

// procUsage returns the usage of process pid ("self" for this one); zero
// where there is no /proc.
func procUsage(pid string) usage {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return usage{}
	}
	// The fields after the command name, which is in parentheses: state
	// is field 3, minflt 10, utime 14 and stime 15 (in clock ticks, 100/s
	// on Linux).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return usage{}
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return usage{}
	}
	minflt, err0 := strconv.ParseInt(f[7], 10, 64)
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err0 != nil || err1 != nil || err2 != nil {
		return usage{}
	}
	return usage{cpu: time.Duration(ut+st) * 10 * time.Millisecond, faults: minflt}
}

// cpuProfile starts a CPU profile into the file the environment variable
// env names, if it is set, and returns what stops it: for the timed part
// of BenchmarkCatchUp only, as -cpuprofile would also cover filling the
// source store, which takes longer than the pull.
func cpuProfile(tb testing.TB, env string) (stop func()) {
	path := os.Getenv(env)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		tb.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
	}
}
