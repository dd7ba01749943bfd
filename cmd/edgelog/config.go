package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/edgelog/edgelog/expiry"
	"github.com/edgelog/edgelog/node"
	"github.com/edgelog/edgelog/store"
)

// Defaults of the node's settings.
const (
	defaultData      = "./edgelog-data"
	defaultListen    = "127.0.0.1:4454"
	defaultAPIURL    = "http://" + defaultListen
	defaultLogLevel  = "info"
	defaultLogFormat = "text"
)

// Environment variables of `edgelog run` (and EDGELOG_API for the client
// commands). Empty values count as unset.
const (
	envConfig      = "EDGELOG_CONFIG"
	envData        = "EDGELOG_DATA"
	envAPI         = "EDGELOG_API"
	envDurability  = "EDGELOG_DURABILITY"
	envDevMode     = "EDGELOG_DEV_MODE"
	envAllowedApps = "EDGELOG_ALLOWED_APPS"
	envTokenTTL    = "EDGELOG_TOKEN_TTL"
	envLogLevel    = "EDGELOG_LOG_LEVEL"
	envLogFormat   = "EDGELOG_LOG_FORMAT"
	envReplicate   = "EDGELOG_REPLICATE"
	envListen      = "EDGELOG_LISTEN"
	envBootstrap   = "EDGELOG_BOOTSTRAP"
	envSwarm       = "EDGELOG_SWARM"
	envSwarmKey    = "EDGELOG_SWARM_KEY"
	envMDNS        = "EDGELOG_MDNS"
	envProfile     = "EDGELOG_PROFILE"
)

// defaultP2PListen are the libp2p addresses a node listens on by default:
// TCP and QUIC on every interface, port 4455.
var defaultP2PListen = []string{"/ip4/0.0.0.0/tcp/4455", "/ip4/0.0.0.0/udp/4455/quic-v1"}

// settings are the effective settings of `edgelog run`.
type settings struct {
	ConfigFile      string // "" without a config file
	Data            string
	Listen          string // host:port
	Durability      store.Durability
	DevMode         bool
	AllowedApps     []string
	TokenTTL        time.Duration
	Limits          store.Limits
	MaxRequestBytes int64
	// BodyTimeout bounds the time a request body takes to arrive.
	BodyTimeout    time.Duration
	Storage        store.Storage     // zero fields take the node's defaults
	IdempotencyTTL time.Duration     // 0: the node's default
	Replication    *node.Replication // nil: replication is off
	LogLevel       slog.Level
	LogFormat      string                      // text or json
	Routes         []expiry.Route              // routing rules (streams.go)
	Streams        map[string]expiry.Retention // named streams' retention
}

func validLevel(s string) bool {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}

// parseListen checks a listen address: HOST:PORT, optionally written as
// http://HOST:PORT so that EDGELOG_API can serve both the node and the
// client commands.
func parseListen(s string) (string, error) {
	addr := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "http://"), "/")
	if strings.Contains(addr, "://") {
		return "", fmt.Errorf("%q: the API serves plain HTTP; want HOST:PORT (put a TLS proxy in front for HTTPS)", s)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not HOST:PORT: %w", s, err)
	}
	if strings.ContainsAny(host, "/ ") {
		return "", fmt.Errorf("%q: invalid host %q", s, host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, port)
	}
	return net.JoinHostPort(host, strconv.FormatUint(p, 10)), nil
}

// checkAppPattern checks an entry of auth.allowedApps: an exact app id, a
// prefix pattern ending in ".*", or "*".
func checkAppPattern(p string) error {
	switch {
	case p == "*":
		return nil
	case p == "" || strings.ContainsAny(p, " \t\r\n"):
		return fmt.Errorf("allowed app %q: must be non-empty and contain no spaces", p)
	case strings.Contains(strings.TrimSuffix(p, ".*"), "*"):
		return fmt.Errorf("allowed app %q: '*' may only stand alone or end the pattern as \".*\"", p)
	case p == ".*" || strings.HasPrefix(p, "."):
		return fmt.Errorf("allowed app %q: must not start with '.'", p)
	}
	return nil
}
