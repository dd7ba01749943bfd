package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/internal/profile"
	"github.com/edgelog/edgelog/node"
	"github.com/edgelog/edgelog/store"
)

// exampleConfig documents the configuration file; `edgelog config example`
// prints it.
//
//go:embed config.example.yaml
var exampleConfig string

// apiURLFile is written into the data directory while the node runs: the
// URL of its API, so that scripts can find a node started on a random port.
const apiURLFile = "api.url"

func (a *app) runCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a node: its event store and its HTTP Events API",
		Long: `Run a node: open (or create) its data directory and serve the HTTP Events API
until interrupted (Ctrl-C or SIGTERM), then shut down gracefully.

Each setting comes from, in this order: a command-line flag, an environment
variable, the YAML configuration file (--config), the default.

  flag            environment variable   config file key     default
  --config        EDGELOG_CONFIG         -                   none
  --data          EDGELOG_DATA           data                ./edgelog-data
  --api           EDGELOG_API            api                 127.0.0.1:4454
  --durability    EDGELOG_DURABILITY     durability          sync
  --dev-mode      EDGELOG_DEV_MODE       auth.devMode        true
  --allowed-apps  EDGELOG_ALLOWED_APPS   auth.allowedApps    none
  --token-ttl     EDGELOG_TOKEN_TTL      auth.tokenTTL       24h
  --log-level     EDGELOG_LOG_LEVEL      log.level           info
  --log-format    EDGELOG_LOG_FORMAT     log.format          text
  --profile       EDGELOG_PROFILE        storage.profile     auto
  --replicate     EDGELOG_REPLICATE      replication.enabled true
  --listen        EDGELOG_LISTEN         replication.listen  TCP and QUIC on port 4455
  --bootstrap     EDGELOG_BOOTSTRAP      replication.bootstrap none
  --mdns          EDGELOG_MDNS           replication.mdns    true
  --swarm         EDGELOG_SWARM          replication.swarm   default
  --swarm-key     EDGELOG_SWARM_KEY      replication.swarmKey none
  -               -                      limits.*, storage.*, streams, routes:
                                         see "edgelog config example"

Dev mode accepts every app id com.example.*: turn it off in production
(--dev-mode=false, EDGELOG_DEV_MODE=false or auth.devMode: false) and list
the apps to accept in auth.allowedApps.

On start the node prints "edgelog: API listening on http://HOST:PORT" on
stderr (with the real port when --api has port 0) and writes that URL into
DATA/api.url, which is removed on shutdown.`,
		Example: `  edgelog run
  edgelog run --data /var/lib/edgelog --api 0.0.0.0:4454 --dev-mode=false --allowed-apps 'com.acme.*'
  EDGELOG_LOG_FORMAT=json edgelog run --config /etc/edgelog/config.yaml`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := resolveSettings(cmd.Flags(), a.env)
			if err != nil {
				var ce *configError
				if errors.As(err, &ce) && ce.fromFlag {
					return &usageError{err: err}
				}
				return err
			}
			return a.serve(cmd.Context(), s)
		},
	}
	f := cmd.Flags()
	f.String("config", "", "YAML configuration file (see 'edgelog config example')")
	f.String("data", defaultData, "data directory: the node's key and database")
	f.String("api", defaultListen, "HOST:PORT the HTTP API listens on (port 0: any free port)")
	f.String("durability", "sync", "when a publish is acknowledged: sync (after fsync) or async")
	f.Bool("dev-mode", true, "accept every app id com.example.* (turn off in production)")
	f.StringSlice("allowed-apps", nil, "app ids to accept: exact ids, prefixes like com.acme.*, or *")
	f.String("token-ttl", "24h", "lifetime of the API's bearer tokens")
	f.Bool("replicate", true, "replicate with peers over libp2p")
	f.StringSlice("listen", nil, "libp2p multiaddrs to listen on (default /ip4/0.0.0.0/tcp/4455 and /ip4/0.0.0.0/udp/4455/quic-v1)")
	f.StringSlice("bootstrap", nil, "peers to dial at start: multiaddrs ending in /p2p/<NodeId>")
	f.String("swarm", "default", "name of the swarm (its gossip topic)")
	f.String("swarm-key", "", "pre-shared swarm key file (edgelog swarm keygen): a private network over TCP")
	f.Bool("mdns", true, "find the swarm's nodes on the LAN by mDNS (--mdns=false to turn off)")
	f.String("log-level", defaultLogLevel, "log level: debug, info, warn or error")
	f.String("log-format", defaultLogFormat, "log format: text or json")
	f.String("profile", string(store.ProfileAuto), "storage and memory profile: auto, default, large or low-memory")
	return cmd
}

// newLogger returns the logger of `edgelog run`.
func newLogger(w io.Writer, s settings) *slog.Logger {
	opts := &slog.HandlerOptions{Level: s.LogLevel}
	if s.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// nodeConfig is the node's part of s.
func (s settings) nodeConfig(log *slog.Logger) node.Config {
	return node.Config{
		Store: store.Config{
			DataDir:        s.Data,
			Durability:     s.Durability,
			Limits:         s.Limits,
			Storage:        s.Storage,
			IdempotencyTTL: s.IdempotencyTTL,
			Routes:         s.Routes,
			Streams:        s.Streams,
			Logger:         log,
			Now:            wallClock(),
		},
		Replication: s.Replication,
		Version:     version,
	}
}

// serve runs a node with settings s until ctx is cancelled.
func (a *app) serve(ctx context.Context, s settings) (err error) {
	log := newLogger(a.stderr, s)
	log.Debug("settings", "config", s.ConfigFile, "data", s.Data, "api", s.Listen, "durability", s.Durability,
		"devMode", s.DevMode, "allowedApps", s.AllowedApps, "tokenTTL", s.TokenTTL,
		"limits", fmt.Sprintf("%+v", s.Limits), "maxRequestBytes", s.MaxRequestBytes, "requestBodyTimeout", s.BodyTimeout,
		"storage", fmt.Sprintf("%+v", s.Storage))

	// The profile (and, for low memory, the Go memory limit) is settled
	// before the database opens, so that its caches are sized under it.
	if _, err := profile.Prepare(s.Storage, log); err != nil {
		return fmt.Errorf("choosing the storage profile: %w", err)
	}
	n, err := node.Open(ctx, s.nodeConfig(log))
	if err != nil {
		return fmt.Errorf("starting the node in %s: %w", s.Data, err)
	}
	defer func() {
		if cerr := n.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing the node: %w", cerr)
		}
		if err == nil {
			log.Info("stopped")
		}
	}()

	srv, err := api.New(n, api.Config{
		Key:             n.PrivateKey(),
		DevMode:         s.DevMode,
		AllowedApps:     s.AllowedApps,
		TokenTTL:        s.TokenTTL,
		MaxRequestBytes: s.MaxRequestBytes,
		BodyTimeout:     s.BodyTimeout,
		Logger:          log,
		Now:             wallClock(),
	})
	if err != nil {
		return fmt.Errorf("starting the API: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.Listen)
	if err != nil {
		return fmt.Errorf("starting the API: %w", err)
	}
	url := "http://" + ln.Addr().String()

	urlFile := filepath.Join(s.Data, apiURLFile)
	if werr := os.WriteFile(urlFile, []byte(url+"\n"), 0o644); werr != nil {
		log.Warn("cannot write the API URL file", "file", urlFile, "err", werr)
	} else {
		defer func() {
			if rerr := os.Remove(urlFile); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				log.Warn("cannot remove the API URL file", "file", urlFile, "err", rerr)
			}
		}()
	}
	// The URL file is written before the announcement, so that whoever
	// waits for the announcement finds it.
	fmt.Fprintf(a.stderr, "edgelog: node ID %s\n", n.NodeID())
	fmt.Fprintf(a.stderr, "edgelog: API listening on %s\n", url)
	log.Info("API listening", "url", url, "nodeId", n.NodeID())
	if s.DevMode {
		log.Warn("dev mode is on: every app id com.example.* is accepted; turn it off in production (auth.devMode: false) and list the apps in auth.allowedApps")
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	select {
	case err := <-served:
		// Serve ends by itself only when it fails.
		if err == nil {
			err = errors.New("the API stopped unexpectedly")
		}
		return fmt.Errorf("serving the API: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	if err := <-served; err != nil {
		return fmt.Errorf("shutting down the API: %w", err)
	}
	return nil
}

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Help with the configuration file of 'edgelog run'",
		Args:  groupArgs,
		RunE:  groupRun,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "example",
		Short: "Print a documented configuration file with the default settings",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			_, err := io.WriteString(a.stdout, exampleConfig)
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Check a configuration file strictly, as 'edgelog run --config FILE' would",
		Args:  argsUsage(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, args []string) error {
			flags := (&app{}).runCmd().Flags()
			if err := flags.Set("config", args[0]); err != nil {
				return err
			}
			if _, err := resolveSettings(flags, func(string) (string, bool) { return "", false }); err != nil {
				return err
			}
			_, err := fmt.Fprintf(a.stdout, "%s: OK\n", args[0])
			return err
		},
	})
	return cmd
}
