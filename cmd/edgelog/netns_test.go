package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgelog/edgelog/api/client"
)

// netnsLab is a switched network of Linux network namespaces for tests that
// run real `edgelog run` processes as separate hosts. Each host has two
// links: a swarm link to a bridge in the lab's switch namespace (taken down
// to partition the host) and an API link to the test's own namespace,
// which stays up so the test can publish and query through a partition.
// Everything is removed when the test ends.
type netnsLab struct {
	t     *testing.T
	tag   string // keeps names apart from concurrent runs
	sw    string // the switch namespace
	hosts []*labHost
	net3  int // third octet of the API links' addresses
}

// labHost is one namespace of a netnsLab and the edgelog process in it.
type labHost struct {
	lab      *netnsLab
	i        int
	ns       string
	swarmIP  string // on the bridge
	apiIP    string // the host's end of its API link
	data     string
	logPath  string
	mu       sync.Mutex
	proc     *exec.Cmd
	exited   chan struct{}
	extra    []string // further `edgelog run` flags of every start
	env      []string // further environment of every start
	bin      string   // the edgelog binary to run (default: buildBinary's)
	bootPeer []string // --bootstrap multiaddrs
}

// needNetns skips the test unless it can create network namespaces.
func needNetns(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs edgelog processes in network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
}

// newNetnsLab creates n hosts joined by a bridge.
func newNetnsLab(t *testing.T, n int) *netnsLab {
	t.Helper()
	needNetns(t)
	pid := os.Getpid()
	lab := &netnsLab{t: t, tag: fmt.Sprintf("%x", pid%0xffff), net3: 10 + pid%240}
	lab.sw = "elsw" + lab.tag
	t.Cleanup(lab.remove)
	lab.ip("netns", "add", lab.sw)
	lab.ip("-n", lab.sw, "link", "set", "lo", "up")
	lab.ip("-n", lab.sw, "link", "add", "br0", "type", "bridge")
	lab.ip("-n", lab.sw, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
	lab.ip("-n", lab.sw, "link", "set", "br0", "up")
	for i := range n {
		h := &labHost{
			lab: lab, i: i, ns: fmt.Sprintf("elh%d-%s", i, lab.tag),
			swarmIP: fmt.Sprintf("10.47.0.%d", i+1),
			apiIP:   fmt.Sprintf("10.200.%d.%d", lab.net3, 4*i+2),
			data:    filepath.Join(t.TempDir(), "data"),
		}
		h.logPath = filepath.Join(filepath.Dir(h.data), "node.log")
		lab.hosts = append(lab.hosts, h)
		lab.ip("netns", "add", h.ns)
		lab.ip("-n", h.ns, "link", "set", "lo", "up")
		lab.ip("-n", lab.sw, "link", "add", fmt.Sprintf("p%d", i), "type", "veth", "peer", "name", "eth0", "netns", h.ns)
		lab.ip("-n", lab.sw, "link", "set", fmt.Sprintf("p%d", i), "master", "br0", "up")
		lab.ip("-n", h.ns, "addr", "add", h.swarmIP+"/24", "dev", "eth0")
		lab.ip("-n", h.ns, "link", "set", "eth0", "up")
		// mDNS sends to 224.0.0.251; without a default route that is unreachable.
		lab.ip("-n", h.ns, "route", "add", "default", "dev", "eth0")
		// The API link: its outer end lives in the test's namespace.
		outer := fmt.Sprintf("ela%d-%s", i, lab.tag)
		lab.ip("link", "add", outer, "type", "veth", "peer", "name", "api0", "netns", h.ns)
		lab.ip("addr", "add", fmt.Sprintf("10.200.%d.%d/30", lab.net3, 4*i+1), "dev", outer)
		lab.ip("link", "set", outer, "up")
		lab.ip("-n", h.ns, "addr", "add", h.apiIP+"/30", "dev", "api0")
		lab.ip("-n", h.ns, "link", "set", "api0", "up")
	}
	return lab
}

func (lab *netnsLab) ip(args ...string) {
	lab.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		lab.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// remove stops every process and deletes the namespaces (which removes
// their links, the API links' outer ends with them).
func (lab *netnsLab) remove() {
	for _, h := range lab.hosts {
		h.kill()
	}
	for _, h := range lab.hosts {
		_ = exec.Command("ip", "netns", "del", h.ns).Run()
	}
	_ = exec.Command("ip", "netns", "del", lab.sw).Run()
}

// setLink takes host i's swarm link up or down.
func (lab *netnsLab) setLink(i int, up bool) {
	state := "down"
	if up {
		state = "up"
	}
	lab.ip("-n", lab.sw, "link", "set", fmt.Sprintf("p%d", i), state)
}

// logTails returns the last lines of every host's log, for failures.
func (lab *netnsLab) logTails(lines int) string {
	var b strings.Builder
	for _, h := range lab.hosts {
		data, _ := os.ReadFile(h.logPath)
		all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		fmt.Fprintf(&b, "--- last lines of host %d's log\n%s\n", h.i, strings.Join(all[max(0, len(all)-lines):], "\n"))
	}
	return b.String()
}

// start runs `edgelog run` in the host's namespace and returns its API URL
// once it listens.
func (h *labHost) start() string {
	h.lab.t.Helper()
	bin := h.bin
	if bin == "" {
		var err error
		if bin, err = buildBinary(); err != nil {
			h.lab.t.Fatal(err)
		}
	}
	args := []string{bin, "run", "--data", h.data,
		"--api", h.apiIP + ":4454", "--listen", "/ip4/" + h.swarmIP + "/tcp/4455",
		"--swarm", h.lab.swarm(), "--durability", "sync"}
	for _, b := range h.bootPeer {
		args = append(args, "--bootstrap", b)
	}
	return h.run(append(args, h.extra...), h.env, listenRE)
}

// startClient starts the host's node and returns a client of its API for
// app com.example.<app>, and its NodeID.
func (h *labHost) startClient(ctx context.Context, app string) (*client.Client, string) {
	t := h.lab.t
	t.Helper()
	c, err := client.New(h.start(), client.Manifest{AppID: "com.example." + app, DisplayName: app, Version: "1"},
		client.WithHTTPClient(&http.Client{Timeout: 20 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.NodeID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c, id
}

// p2pAddr is the multiaddr of the node with NodeID id on host h.
func (h *labHost) p2pAddr(id string) string {
	return fmt.Sprintf("/ip4/%s/tcp/4455/p2p/%s", h.swarmIP, id)
}

// swarm is the swarm name of the lab's nodes.
func (lab *netnsLab) swarm() string { return "lab" + lab.tag }

// run starts argv in the host's namespace with env added to the
// environment, and returns the first submatch of ready once a line of the
// process's stderr matches it. Its output is appended to the host's log.
func (h *labHost) run(argv, env []string, ready *regexp.Regexp) string {
	t := h.lab.t
	t.Helper()
	// `ip netns exec` execs argv[0], so the process is that program itself.
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns}, argv...)...)
	cmd.Env = append(binaryEnv(), env...)
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	readyc := make(chan string, 1)
	go func() {
		defer logf.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case readyc <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(logf, stderr)
		_ = cmd.Wait()
		close(exited)
	}()
	h.mu.Lock()
	h.proc, h.exited = cmd, exited
	h.mu.Unlock()
	select {
	case u := <-readyc:
		return u
	case <-exited:
		t.Fatalf("host %d: %s exited before it was ready: %v\n%s", h.i, filepath.Base(argv[0]), cmd.ProcessState, h.lab.logTails(20))
	case <-time.After(60 * time.Second):
		t.Fatalf("host %d: %s not ready within 60s\n%s", h.i, filepath.Base(argv[0]), h.lab.logTails(20))
	}
	return ""
}

// kill SIGKILLs the host's process, if it runs, and waits until it is gone.
func (h *labHost) kill() {
	h.mu.Lock()
	proc, exited := h.proc, h.exited
	h.proc = nil
	h.mu.Unlock()
	if proc == nil {
		return
	}
	_ = proc.Process.Signal(syscall.SIGKILL)
	<-exited
}

// died reports whether the host's process ended without being killed by
// the test (a crash), and how.
func (h *labHost) died() (bool, string) {
	h.mu.Lock()
	proc, exited := h.proc, h.exited
	h.mu.Unlock()
	if proc == nil {
		return false, ""
	}
	select {
	case <-exited:
		return true, proc.ProcessState.String()
	default:
		return false, ""
	}
}
