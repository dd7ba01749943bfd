//go:build linux

// Command soakload drives scripts/soak.sh: it publishes events to a running
// edgelog node at a fixed rate for a fixed time, samples the node's data
// directory size, RSS and the expiring stream's floor, count and bytes every
// 5 s (the directory's size also every 0.25 s: a compaction's peak lasts
// about a second), and judges the run: the data directory must stay under 1.5x the
// stream's maxSize and the RSS must stay flat: once the stream is full, the
// lowest RSS of the last third of the samples within 1.25x of the middle
// third's (compactions make it spike for seconds; a leak lifts the troughs;
// the first third lets the caches warm up).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "soakload:", err)
		os.Exit(1)
	}
}

type sample struct {
	at                 time.Duration
	dir, rss           int64
	anon               int64 // RssAnon: the heap and other private memory, not mapped files
	floor, count, size int64
}

func run() error {
	url := flag.String("url", "", "the node's API base URL")
	pid := flag.Int("pid", 0, "the node's process ID (for RSS)")
	data := flag.String("data", "", "the node's data directory")
	limit := flag.Int64("limit", 0, "the stream's maxSize in bytes")
	rate := flag.Int("rate", 1000, "events per second")
	batch := flag.Int("batch", 100, "events per publish")
	secs := flag.Int("seconds", 300, "duration")
	payload := flag.Int("payload", 300, "payload characters per event")
	flag.Parse()
	if *url == "" || *pid == 0 || *data == "" || *limit <= 0 || *rate < *batch || *secs < 20 || *secs > 86400 {
		return fmt.Errorf("bad flags; see -h")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*secs+120)*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	token, err := auth(ctx, hc, *url)
	if err != nil {
		return err
	}
	// Ten bodies with distinct random payloads: nothing for the store to
	// compress away.
	var bodies [][]byte
	for range 10 {
		type ev struct {
			Tags    []string          `json:"tags"`
			Payload map[string]string `json:"payload"`
		}
		evs := make([]ev, *batch)
		for i := range evs {
			raw := make([]byte, *payload)
			rand.Read(raw)
			evs[i] = ev{Tags: []string{"telemetry", "soak"}, Payload: map[string]string{"v": base64.StdEncoding.EncodeToString(raw)[:*payload]}}
		}
		b, _ := json.Marshal(map[string]any{"data": evs})
		bodies = append(bodies, b)
	}

	fmt.Printf("soak: %d events/s for %ds into a maxSize stream of %d bytes, node %s (pid %d)\n", *rate, *secs, *limit, *url, *pid)
	var sent, failed atomic.Int64
	var samples []sample
	start := time.Now()
	perSec := *rate / *batch
	var wg sync.WaitGroup
	peak := watchDir(ctx, *data, start)
	for s := 0; s < *secs; s++ {
		if s%5 == 0 {
			sm, err := take(ctx, hc, *url, token, *pid, *data, time.Since(start))
			if err != nil {
				return err
			}
			samples = append(samples, sm)
			sm.print()
		}
		for k := range perSec {
			wg.Go(func() {
				if err := publish(ctx, hc, *url, token, bodies[(s*7+k)%len(bodies)]); err != nil {
					if failed.Add(1) <= 3 {
						fmt.Fprintln(os.Stderr, "publish:", err)
					}
					return
				}
				sent.Add(int64(*batch))
			})
		}
		// Hold the rate: the next second starts on time, whatever this
		// one's publishes do.
		if d := time.Until(start.Add(time.Duration(s+1) * time.Second)); d > 0 {
			time.Sleep(d)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	sm, err := take(ctx, hc, *url, token, *pid, *data, elapsed)
	if err != nil {
		return err
	}
	samples = append(samples, sm)
	sm.print()

	var maxDir, maxRSS int64
	for _, s := range samples {
		maxDir, maxRSS = max(maxDir, s.dir), max(maxRSS, s.rss)
	}
	fast := peak()
	at5s := maxDir
	maxDir = max(maxDir, fast.bytes)
	// Compactions make the RSS spike for a few seconds; a leak lifts the
	// troughs. Once the stream is full (its floor moves) and the caches
	// warmed up (the first third of that), compare the lowest RSS of the
	// second third of those samples with the last third's.
	var steady, steadyAnon []int64
	for _, s := range samples {
		if s.floor > 0 {
			steady = append(steady, s.rss)
			steadyAnon = append(steadyAnon, s.anon)
		}
	}
	if len(steady) < 12 {
		return fmt.Errorf("the stream was full for only %d samples: run longer to judge the RSS", len(steady))
	}
	third := len(steady) / 3
	q2, q4 := float64(slices.Min(steady[third:2*third])), float64(slices.Min(steady[2*third:]))
	mb := func(v float64) float64 { return v / 1e6 }
	fmt.Printf("sent %d events in %.0f s (%.0f events/s), %d failed publishes\n", sent.Load(), elapsed.Seconds(), float64(sent.Load())/elapsed.Seconds(), failed.Load())
	fmt.Printf("data dir max %.1f MB = %.2fx the limit of %.1f MB at %.0f s, sampled every 0.25 s (pass < 1.5x); max of the 5 s samples %.1f MB = %.2fx\n",
		mb(float64(maxDir)), float64(maxDir)/float64(*limit), mb(float64(*limit)), fast.at.Seconds(), mb(float64(at5s)), float64(at5s)/float64(*limit))
	fmt.Printf("RSS max %.1f MB; with the stream full, lowest in the middle third %.1f MB, in the last %.1f MB = %.2fx (pass <= 1.25x)\n", mb(float64(maxRSS)), mb(q2), mb(q4), q4/q2)
	slices.Sort(steadyAnon)
	fmt.Printf("anonymous memory (RssAnon, without mapped files) with the stream full: lowest %.1f MB, median %.1f MB, highest %.1f MB\n",
		mb(float64(steadyAnon[0])), mb(float64(steadyAnon[len(steadyAnon)/2])), mb(float64(steadyAnon[len(steadyAnon)-1])))
	ok := true
	if float64(maxDir) >= 1.5*float64(*limit) {
		fmt.Println("FAIL: data directory above 1.5x the limit")
		ok = false
	}
	if q4 > 1.25*q2 {
		fmt.Println("FAIL: RSS grew")
		ok = false
	}
	if failed.Load() > 0 {
		fmt.Println("FAIL: publishes failed")
		ok = false
	}
	if !ok {
		return fmt.Errorf("soak failed")
	}
	fmt.Println("PASS")
	return nil
}

func (s sample) print() {
	fmt.Printf("%5.0fs  dir %6.1f MB  rss %6.1f MB  anon %6.1f MB  floor %8d  count %7d  stream %6.1f MB\n",
		s.at.Seconds(), float64(s.dir)/1e6, float64(s.rss)/1e6, float64(s.anon)/1e6, s.floor, s.count, float64(s.size)/1e6)
}

func auth(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v2/auth", strings.NewReader(`{"appId":"com.example.soak","displayName":"soak","version":"1"}`))
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var r struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Token == "" {
		return "", fmt.Errorf("auth: status %s: %v", resp.Status, err)
	}
	return r.Token, nil
}

func publish(ctx context.Context, hc *http.Client, url, token string, body []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v2/events/publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s: %s", resp.Status, msg)
	}
	return nil
}

// dirPeak is the largest size watchDir saw and when.
type dirPeak struct {
	bytes int64
	at    time.Duration
}

// watchDir samples the disk usage of dir every 0.25 s until ctx ends and
// returns a func that stops it and reports the peak.
func watchDir(ctx context.Context, dir string, start time.Time) func() dirPeak {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan dirPeak, 1)
	go func() {
		var p dirPeak
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if n := dirBytes(dir); n > p.bytes {
				p = dirPeak{n, time.Since(start)}
			}
			select {
			case <-ctx.Done():
				done <- p
				return
			case <-tick.C:
			}
		}
	}()
	return func() dirPeak { cancel(); return <-done }
}

// dirBytes is the disk space the files under dir occupy (allocated
// blocks: Badger's files are sparse until written).
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					n += st.Blocks * 512
				}
			}
		}
		return nil
	})
	return n
}

func take(ctx context.Context, hc *http.Client, url, token string, pid int, data string, at time.Duration) (sample, error) {
	s := sample{at: at, dir: dirBytes(data)}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("the node is gone: %w", err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), ":")
		if name != "VmRSS" && name != "RssAnon" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		if name == "VmRSS" {
			s.rss = kb << 10
		} else {
			s.anon = kb << 10
		}
	}
	f.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v2/events/offsets", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	var offs struct {
		Streams map[string]struct {
			Floor, Count, Bytes int64
			Retention           string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&offs); err != nil {
		return s, fmt.Errorf("offsets: %w", err)
	}
	for _, st := range offs.Streams {
		if st.Retention != "" {
			s.floor, s.count, s.size = st.Floor, st.Count, st.Bytes
		}
	}
	return s, nil
}
