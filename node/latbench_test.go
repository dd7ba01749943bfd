package node

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/store"
)

// BenchmarkLiveLatency: node A publishes one event per millisecond; a
// subscriber on B sees each after a delay, publish call to delivery,
// reported as p50, p99 and max in ms. "direct": B is A's peer; "relay": B
// reaches A only through a third node. Both with async and sync
// durability on every node.
func BenchmarkLiveLatency(b *testing.B) {
	count := envCount(b, "EDGELOG_BENCH_LATENCY_EVENTS", 2000)
	for _, dur := range []store.Durability{store.DurabilityAsync, store.DurabilitySync} {
		b.Run(string(dur), func(b *testing.B) {
			// 0 = A, 1 = relay, 2 = C; A and C never connect.
			c := newCluster(b, 3, func(cfg *Config) { cfg.Store.Durability = dur })
			c.cutLink(0, 2)
			for _, tc := range []struct {
				name string
				to   int
			}{{"direct", 1}, {"relay", 2}} {
				b.Run(tc.name, func(b *testing.B) { measureLatency(b, c, 0, tc.to, count) })
			}
		})
	}
}

// measureLatency publishes count events on node from, one per
// millisecond, and reports the delays until a subscription on node to
// delivers them.
func measureLatency(b *testing.B, c *cluster, from, to, count int) {
	tag := fmt.Sprintf("lat-%d-%d", time.Now().UnixNano(), to)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrived := make([]time.Time, count)
	var mu sync.Mutex
	got := 0
	live := make(chan struct{})
	all := make(chan struct{})
	subErr := make(chan error, 1)
	go func() {
		subErr <- func() error {
			for it, err := range c.nodes[to].Subscribe(ctx, event.SubscribeRequest{Query: aql.MustParse("FROM '" + tag + "'")}) {
				if err != nil {
					return err
				}
				switch it.Kind {
				case event.KindOffsets:
					close(live)
				case event.KindEvent:
					now := time.Now()
					seq := -1
					for _, t := range it.Event.Tags {
						if s, ok := strings.CutPrefix(t, "seq:"); ok {
							seq, _ = strconv.Atoi(s)
						}
					}
					if seq < 0 || seq >= count {
						return fmt.Errorf("event without a valid seq tag: %v", it.Event.Tags)
					}
					mu.Lock()
					arrived[seq] = now
					got++
					if got == count {
						close(all)
					}
					mu.Unlock()
				}
			}
			return nil
		}()
	}()
	select {
	case <-live:
	case err := <-subErr:
		b.Fatalf("subscription ended: %v", err)
	case <-time.After(30 * time.Second):
		b.Fatal("subscription not live within 30s")
	}
	// One publish per millisecond, each in its own goroutine, so that the
	// rate holds even when a durable publish takes longer than that.
	var samples []string
	if os.Getenv("EDGELOG_BENCH_DEBUG") != "" {
		// Debug aid: what the receiving node holds and believes its peers
		// hold, every 5 ms.
		stream := c.nodes[from].DefaultStream()
		sctx, scancel := context.WithCancel(ctx)
		sdone := make(chan struct{})
		defer func() { scancel(); <-sdone; b.Logf("samples (ms: present/toReplicate):%s", strings.Join(samples, " ")) }()
		go func() {
			defer close(sdone)
			t0 := time.Now()
			for sctx.Err() == nil && len(samples) < 5000 {
				o, _ := c.nodes[to].Offsets(sctx)
				samples = append(samples, fmt.Sprintf("%d:%d/%d", time.Since(t0).Milliseconds(), o.Present[stream], o.ToReplicate[stream]))
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	sent := make([]time.Time, count)
	body := payload(b, strings.Repeat("x", 90))
	var pubs sync.WaitGroup
	pubErr := make(chan error, count)
	start := time.Now()
	b.ResetTimer()
	for i := range count {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Millisecond))) // catches up after a late wake-up
		sent[i] = time.Now()
		pubs.Go(func() {
			if _, err := c.nodes[from].Publish(ctx, "com.example.latency", []event.Draft{{Tags: []string{tag, fmt.Sprintf("seq:%d", i)}, Payload: body}}); err != nil {
				pubErr <- err
			}
		})
	}
	pubRate := float64(count) / time.Since(start).Seconds()
	pubs.Wait()
	close(pubErr)
	if err := <-pubErr; err != nil {
		b.Fatal(err)
	}
	select {
	case <-all:
	case err := <-subErr:
		b.Fatalf("subscription ended: %v", err)
	case <-time.After(60 * time.Second):
		mu.Lock()
		b.Fatalf("%d of %d events delivered within 60s of the last publish", got, count)
	}
	b.StopTimer()
	lat := make([]float64, count)
	mu.Lock()
	for i := range lat {
		lat[i] = float64(arrived[i].Sub(sent[i])) / float64(time.Millisecond)
	}
	mu.Unlock()
	if os.Getenv("EDGELOG_BENCH_DEBUG") != "" {
		var b2 strings.Builder
		last := time.Time{}
		n := 0
		for i := range arrived {
			if arrived[i].Sub(last) > 2*time.Millisecond && n > 0 {
				fmt.Fprintf(&b2, " %v:%d", last.Sub(start).Round(time.Millisecond), n)
				n = 0
			}
			last = arrived[i]
			n++
		}
		fmt.Fprintf(&b2, " %v:%d", last.Sub(start).Round(time.Millisecond), n)
		b.Logf("arrival bursts (time since start: events):%s", b2.String())
	}
	slices.Sort(lat)
	b.ReportMetric(lat[count/2], "p50-ms")
	b.ReportMetric(lat[min(count-1, count*99/100)], "p99-ms")
	b.ReportMetric(lat[count-1], "max-ms")
	b.ReportMetric(pubRate, "published/s")
}

// BenchmarkConvergence10: ten nodes split in halves of five; each node
// publishes its events (in batches of a tenth) and each half converges;
// then the halves are reconnected and the benchmark times how long until
// every node holds every event (converge-s).
func BenchmarkConvergence10(b *testing.B) {
	per := envCount(b, "EDGELOG_BENCH_CONVERGE_EVENTS", 1000)
	batch := max(1, per/10)
	per = per / batch * batch
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := newCluster(b, 10)
		c.partition([]int{0, 1, 2, 3, 4}, []int{5, 6, 7, 8, 9})
		for j := range 10 {
			c.publishBatches(j, per/batch, batch, "conv")
		}
		c.waitConverged(5*time.Minute, 5*per, 0, 1, 2, 3, 4)
		c.waitConverged(5*time.Minute, 5*per, 5, 6, 7, 8, 9)
		b.StartTimer()
		start := time.Now()
		c.heal()
		healed := time.Since(start)
		_, took := c.waitConverged(5*time.Minute, 10*per)
		b.StopTimer()
		total += healed + took
		for j := range c.nodes {
			c.stop(j)
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "converge-s")
}
