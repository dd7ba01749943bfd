package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgelog/edgelog/api/client"
	"github.com/edgelog/edgelog/event"
)

// buildBinary compiles edgelog once per test run, with the race detector
// when the tests have it (see binaryEnv).
func buildBinary() (string, error) { return buildTagged("") }

// builds holds the binaries buildTagged made, by build tags.
var builds = struct {
	sync.Mutex
	bin map[string]string
}{bin: map[string]string{}}

// buildTagged compiles edgelog with the given build tags (comma-separated)
// once per test run.
func buildTagged(tags string) (string, error) {
	builds.Lock()
	defer builds.Unlock()
	if bin, ok := builds.bin[tags]; ok {
		return bin, nil
	}
	dir, err := os.MkdirTemp("", "edgelog-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "edgelog")
	args := []string{"build", "-o", bin}
	if raceBuild {
		args = append(args, "-race")
	}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	builds.bin[tags] = bin
	return bin, nil
}

// binaryEnv is the environment of a started edgelog binary: a race-built
// one stops at its first data race, so the test sees a process that died.
func binaryEnv() []string {
	return append(os.Environ(), "GORACE=halt_on_error=1")
}

var listenRE = regexp.MustCompile(`API listening on (http://\S+)`)

// startProcess runs `edgelog run` on dataDir with a random port and returns
// the process and its API URL once it listens.
func startProcess(t *testing.T, dataDir string) (*exec.Cmd, string) {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--data", dataDir, "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--mdns=false", "--durability", "sync")
	cmd.Env = binaryEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case u := <-urlc:
		return cmd, u
	case <-time.After(60 * time.Second):
		t.Fatal("edgelog run did not start listening within 60s")
	}
	return nil, ""
}

// TestCrashKeepsAcknowledgedEvents kills the node with SIGKILL while
// publishers run, restarts it, and checks that every acknowledged event is
// there, unchanged, that offsets are gapless, and that the Lamport clock did
// not go back.
func TestCrashKeepsAcknowledgedEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	proc, url := startProcess(t, data)
	c, err := client.New(url, client.Manifest{AppID: "com.example.crash", DisplayName: "crash test", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	type acked struct {
		meta    event.Meta
		payload string
	}
	var mu sync.Mutex
	var acks []acked
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := 1 + i%5 // batches of 1..5 events
				evs := make([]client.PublishEvent, n)
				for j := range evs {
					evs[j] = client.PublishEvent{Tags: []string{"crash", fmt.Sprintf("p:%d", p)}, Payload: json.RawMessage(fmt.Sprintf(`{"p":%d,"i":%d,"j":%d}`, p, i, j))}
				}
				metas, err := c.Publish(ctx, evs)
				if err != nil {
					return // the node died: this publish was not acknowledged
				}
				mu.Lock()
				for j, m := range metas {
					acks = append(acks, acked{m, string(evs[j].Payload)})
				}
				mu.Unlock()
			}
		}()
	}
	// Kill once a good number of publishes were acknowledged.
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 2000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	proc.Wait()
	close(stop)
	wg.Wait()
	if len(acks) == 0 {
		t.Fatal("no publish was acknowledged before the kill")
	}

	_, url = startProcess(t, data)
	c, err = client.New(url, client.Manifest{AppID: "com.example.crash", DisplayName: "crash test", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[uint64]string{}
	var maxLamport uint64
	var stream event.StreamID
	for line, err := range c.Query(ctx, client.QueryRequest{Query: "FROM 'crash'"}) {
		if err != nil {
			t.Fatal(err)
		}
		if line.Type != "event" {
			continue
		}
		e := line.Event
		stored[e.Offset] = string(e.Payload)
		maxLamport = max(maxLamport, e.Lamport)
		stream = e.Stream
	}
	for off := range uint64(len(stored)) {
		if _, ok := stored[off]; !ok {
			t.Fatalf("offsets not gapless: %d missing of %d stored", off, len(stored))
		}
	}
	for _, a := range acks {
		got, ok := stored[a.meta.Offset]
		if !ok || a.meta.Stream != stream {
			t.Fatalf("acknowledged event %+v lost after SIGKILL", a.meta)
		}
		var want, have any
		json.Unmarshal([]byte(a.payload), &want)
		json.Unmarshal([]byte(got), &have)
		if fmt.Sprint(want) != fmt.Sprint(have) {
			t.Fatalf("event at offset %d changed: published %s, stored %s", a.meta.Offset, a.payload, got)
		}
	}
	metas, err := c.Publish(ctx, []client.PublishEvent{{Tags: []string{"crash"}, Payload: json.RawMessage(`"after"`)}})
	if err != nil {
		t.Fatal(err)
	}
	if metas[0].Offset != uint64(len(stored)) || metas[0].Lamport <= maxLamport {
		t.Fatalf("publish after restart got %+v; want offset %d and lamport > %d", metas[0], len(stored), maxLamport)
	}
	t.Logf("%d events acknowledged before SIGKILL, %d stored after restart", len(acks), len(stored))
}
