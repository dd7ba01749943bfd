package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/node"
	"github.com/edgelog/edgelog/replicate/p2p"
	"github.com/edgelog/edgelog/store"
)

// resolve parses args as flags of `edgelog run` and resolves the settings
// with env as the environment.
func resolve(t *testing.T, env map[string]string, args ...string) (settings, error) {
	t.Helper()
	cmd := (&app{}).runCmd()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("parsing flags %q: %v", args, err)
	}
	return resolveSettings(cmd.Flags(), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok && v != ""
	})
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaults(t *testing.T) {
	s, err := resolve(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := settings{
		Data:            defaultData,
		Listen:          defaultListen,
		Durability:      store.DurabilitySync,
		DevMode:         true,
		TokenTTL:        api.DefaultTokenTTL,
		Limits:          store.DefaultLimits,
		MaxRequestBytes: api.DefaultMaxRequestBytes,
		BodyTimeout:     api.DefaultBodyTimeout,
		Storage:         store.Storage{Profile: store.ProfileAuto},
		Replication:     &node.Replication{Listen: defaultP2PListen, Swarm: "default", MDNS: true, MaxPeers: p2p.DefaultMaxPeers},
		LogFormat:       "text",
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", s, want)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "edgelog.yaml", `
data: /from/file
api: 127.0.0.1:1001
durability: async
auth:
  devMode: false
  allowedApps: [com.file.*]
  tokenTTL: 1h
log:
  level: warn
  format: json
`)
	otherFile := writeFile(t, "other.yaml", "data: /from/other-file\n")

	type want struct {
		data, listen, level, format string
		durability                  store.Durability
		devMode                     bool
		apps                        []string
		ttl                         time.Duration
	}
	fileWant := want{"/from/file", "127.0.0.1:1001", "WARN", "json", store.DurabilityAsync, false, []string{"com.file.*"}, time.Hour}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want want
	}{
		{"file beats defaults", nil, []string{"--config", file}, fileWant},
		{"EDGELOG_CONFIG names the file", map[string]string{envConfig: file}, nil, fileWant},
		{"--config beats EDGELOG_CONFIG", map[string]string{envConfig: file}, []string{"--config", otherFile},
			want{"/from/other-file", defaultListen, "INFO", "text", store.DurabilitySync, true, nil, api.DefaultTokenTTL}},
		{"env beats file", map[string]string{
			envData: "/from/env", envAPI: "127.0.0.1:2002", envDurability: "sync", envDevMode: "true",
			envAllowedApps: "com.env.a, com.env.b", envTokenTTL: "2h", envLogLevel: "debug", envLogFormat: "text",
		}, []string{"--config", file},
			want{"/from/env", "127.0.0.1:2002", "DEBUG", "text", store.DurabilitySync, true, []string{"com.env.a", "com.env.b"}, 2 * time.Hour}},
		{"empty env counts as unset", map[string]string{envData: "", envDevMode: ""}, []string{"--config", file}, fileWant},
		{"flags beat env and file", map[string]string{
			envData: "/from/env", envAPI: "127.0.0.1:2002", envDurability: "sync", envDevMode: "true",
			envAllowedApps: "com.env.a", envTokenTTL: "2h", envLogLevel: "debug", envLogFormat: "text",
		}, []string{"--config", file, "--data", "/from/flag", "--api", "http://127.0.0.1:3003", "--durability", "async",
			"--dev-mode=false", "--allowed-apps", "com.flag.x", "--allowed-apps", "com.flag.y", "--token-ttl", "3h",
			"--log-level", "error", "--log-format", "json"},
			want{"/from/flag", "127.0.0.1:3003", "ERROR", "json", store.DurabilityAsync, false, []string{"com.flag.x", "com.flag.y"}, 3 * time.Hour}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := resolve(t, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			got := want{s.Data, s.Listen, s.LogLevel.String(), s.LogFormat, s.Durability, s.DevMode, s.AllowedApps, s.TokenTTL}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestFileLimitsAndStorage(t *testing.T) {
	file := writeFile(t, "c.yaml", `
limits:
  maxPayloadBytes: 1KiB
  maxTagsPerEvent: 3
  maxTagBytes: 100
  maxEventsPerPublish: 7
  maxRequestBytes: "2 MB"
  requestBodyTimeout: 5s
storage:
  memTableSize: 8MiB
  blockCacheSize: 1048576
  numCompactors: 3
  minFreeBytes: 1G
  profile: low-memory
  maxDBBytes: 512MiB
  trimInterval: 0s
  idempotencyTTL: 36h
`)
	s, err := resolve(t, nil, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Limits{MaxPayloadBytes: 1024, MaxTagsPerEvent: 3, MaxTagBytes: 100, MaxEventsPerPublish: 7}); s.Limits != want {
		t.Errorf("limits: got %+v, want %+v", s.Limits, want)
	}
	if s.IdempotencyTTL != 36*time.Hour || s.nodeConfig(nil).Store.IdempotencyTTL != 36*time.Hour {
		t.Errorf("idempotencyTTL: got %v, handed to the node %v", s.IdempotencyTTL, s.nodeConfig(nil).Store.IdempotencyTTL)
	}
	if nc := s.nodeConfig(nil).Store; nc.Storage != s.Storage || nc.Limits != s.Limits {
		t.Errorf("the node gets storage %+v and limits %+v, want %+v and %+v", nc.Storage, nc.Limits, s.Storage, s.Limits)
	}
	if s.MaxRequestBytes != 2_000_000 {
		t.Errorf("maxRequestBytes: got %d", s.MaxRequestBytes)
	}
	if s.BodyTimeout != 5*time.Second {
		t.Errorf("requestBodyTimeout: got %v", s.BodyTimeout)
	}
	bad := writeFile(t, "bad.yaml", "limits:\n  requestBodyTimeout: -1s\n")
	if _, err := resolve(t, nil, "--config", bad); err == nil || !strings.Contains(err.Error(), "requestBodyTimeout") {
		t.Errorf("a negative requestBodyTimeout: %v", err)
	}
	if want := (store.Storage{MemTableSize: 8 << 20, BlockCacheSize: 1 << 20, NumCompactors: 3, MinFreeBytes: 1 << 30, Profile: store.ProfileLowMemory, MaxDBBytes: 512 << 20, TrimInterval: -1}); s.Storage != want {
		t.Errorf("storage: got %+v, want %+v", s.Storage, want)
	}
}

// TestExampleConfig checks that config.example.yaml is valid, documents
// every key of the schema, and states the defaults.
func TestExampleConfig(t *testing.T) {
	path := writeFile(t, "example.yaml", exampleConfig)
	s, err := resolve(t, nil, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	def, err := resolve(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	def.ConfigFile = path
	def.AllowedApps = []string{}
	def.Replication.Bootstrap = []string{}
	def.Storage = store.Storage{MemTableSize: 32 << 20, BlockCacheSize: 64 << 20, NumCompactors: 2, MinFreeBytes: 224 << 20, Profile: store.ProfileAuto}
	if !reflect.DeepEqual(s, def) {
		t.Errorf("the example does not state the defaults:\n got %+v\nwant %+v", s, def)
	}

	var doc map[string]any
	if err := yaml.Unmarshal([]byte(exampleConfig), &doc); err != nil {
		t.Fatal(err)
	}
	var missing []string
	var walk func(prefix string, typ reflect.Type, m map[string]any)
	walk = func(prefix string, typ reflect.Type, m map[string]any) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			key := f.Tag.Get("yaml")
			v, ok := m[key]
			if !ok {
				missing = append(missing, prefix+key)
				continue
			}
			if strings.HasPrefix(f.Type.Name(), "file") {
				sub, _ := v.(map[string]any)
				walk(prefix+key+".", f.Type, sub)
			}
		}
	}
	walk("", reflect.TypeFor[fileConfig](), doc)
	if len(missing) > 0 {
		t.Errorf("config.example.yaml does not document %v", missing)
	}
}

func TestFileStrict(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown top-level key", "data: x\nnetwork: {}\n", []string{":2:1:", "network", "unknown key"}},
		{"unknown nested key", "data: x\nauth:\n  devMode: true\n  bogus: 1\n", []string{":4:3:", "auth.bogus", "unknown key"}},
		{"misspelt key", "limits:\n  maxPayloadByte: 10\n", []string{":2:3:", "limits.maxPayloadByte", "unknown key"}},
		{"bool as yes", "auth:\n  devMode: yes\n", []string{":2:12:", "auth.devMode", `"yes"`, "want true or false"}},
		{"string for an integer", "limits:\n  maxTagsPerEvent: ten\n", []string{":2:20:", "limits.maxTagsPerEvent", "want an integer"}},
		{"float for an integer", "storage:\n  numCompactors: 2.5\n", []string{":2:18:", "storage.numCompactors", "want an integer"}},
		{"bad size", "limits:\n  maxPayloadBytes: 12 parsecs\n", []string{":2:20:", "limits.maxPayloadBytes", "size in bytes"}},
		{"scalar for a mapping", "limits: 5\n", []string{":1:9:", "limits", "want a mapping"}},
		{"number for a string", "data: 42\n", []string{":1:7:", "data", "want a string"}},
		{"scalar for a list", "auth:\n  allowedApps: com.x\n", []string{":2:16:", "auth.allowedApps", "want a list of strings"}},
		{"bad list element", "auth:\n  allowedApps: [com.x, 7]\n", []string{"auth.allowedApps[1]", "want a string"}},
		{"bad duration", "auth:\n  tokenTTL: 5 minutes\n", []string{":2:13:", "auth.tokenTTL", "want a duration"}},
		{"idempotency TTL not positive", "storage:\n  idempotencyTTL: 0s\n", []string{":2:19:", "storage.idempotencyTTL", "must be positive"}},
		{"duplicate key", "data: a\ndata: b\n", []string{":2:1:", "already defined"}},
		{"syntax error", "data: [\n", []string{"c.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "c.yaml", tc.yaml)
			_, err := resolve(t, nil, "--config", path)
			if err == nil {
				t.Fatalf("no error for %q", tc.yaml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	_, err := resolve(t, nil, "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
	path := writeFile(t, "c.yaml", "auth:\n  bogus: 1\n")
	_, err = resolve(t, nil, "--config", path)
	var uf *yaml.UnknownFieldError
	if !errors.As(err, &uf) {
		t.Errorf("unknown key: error %v does not wrap *yaml.UnknownFieldError", err)
	}
}

func TestValidation(t *testing.T) {
	file := writeFile(t, "c.yaml", `
durability: eventually
limits:
  maxTagsPerEvent: -1
storage:
  numCompactors: 1
  memTableSize: 1000
log:
  format: xml
replication:
  maxPeers: 0
`)
	_, err := resolve(t, map[string]string{
		envAPI: "localhost", envDevMode: "maybe", envTokenTTL: "-1h", envAllowedApps: "com.*.x",
	}, "--config", file, "--log-level", "loud")
	var ce *configError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *configError", err)
	}
	for _, w := range []string{
		`EDGELOG_API: "localhost" is not HOST:PORT`,
		`c.yaml:2:13: durability: "eventually" is not a durability`,
		`EDGELOG_DEV_MODE: "maybe" is not a boolean`,
		`EDGELOG_ALLOWED_APPS: allowed app "com.*.x"`,
		`EDGELOG_TOKEN_TTL: -1h0m0s: the token lifetime must be positive`,
		`c.yaml:4:20: limits.maxTagsPerEvent: -1 is out of range`,
		`c.yaml:6:18: storage.numCompactors: the database needs at least 2 compactors`,
		`c.yaml:7:17: storage.memTableSize: 1000 is too small`,
		`--log-level: "loud" is not a log level`,
		`c.yaml:9:11: log.format: "xml" is not a log format`,
		`c.yaml:11:13: replication.maxPeers: 0 is out of range`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
	if len(ce.problems) != 11 {
		t.Errorf("got %d problems, want 11:\n%v", len(ce.problems), err)
	}
	if !ce.fromFlag {
		t.Error("a bad flag is not reported as such")
	}

	_, err = resolve(t, map[string]string{envProfile: "tiny"})
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `EDGELOG_PROFILE: "tiny" is not a profile`) {
		t.Errorf("bad profile: got %v", err)
	}
	s, err := resolve(t, map[string]string{envProfile: "default"}, "--profile", "low-memory")
	if err != nil || s.Storage.Profile != store.ProfileLowMemory {
		t.Errorf("--profile low-memory over EDGELOG_PROFILE: got %q, %v", s.Storage.Profile, err)
	}

	_, err = resolve(t, map[string]string{envDurability: "fast"})
	if !errors.As(err, &ce) || ce.fromFlag || !strings.Contains(err.Error(), "EDGELOG_DURABILITY") {
		t.Errorf("bad env: got %v", err)
	}
}

func TestReplicationAddrs(t *testing.T) {
	const peerAddr = "/ip4/127.0.0.1/tcp/4455/p2p/12D3KooWGRUVh7iukXdUMb2eSbSCXBaDLUMaS6FGfWoBFzmw6Sb6"
	s, err := resolve(t, nil, "--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", peerAddr)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Replication.Listen, []string{"/ip4/127.0.0.1/tcp/0"}) || !reflect.DeepEqual(s.Replication.Bootstrap, []string{peerAddr}) {
		t.Errorf("got listen %q, bootstrap %q", s.Replication.Listen, s.Replication.Bootstrap)
	}

	_, err = resolve(t, map[string]string{envBootstrap: "/ip4/127.0.0.1/tcp/4455"}, "--listen", "tcp:4455")
	var ce *configError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *configError", err)
	}
	for _, w := range []string{
		`--listen: replication: listen "tcp:4455" is not a multiaddr`,
		`EDGELOG_BOOTSTRAP: replication: bootstrap "/ip4/127.0.0.1/tcp/4455" must end in /p2p/<NodeId>`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
	if len(ce.problems) != 2 {
		t.Errorf("got %d problems, want 2:\n%v", len(ce.problems), err)
	}
}

func TestParseListen(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:4454":        "127.0.0.1:4454",
		"http://0.0.0.0:80/":    "0.0.0.0:80",
		":0":                    ":0",
		"[::1]:4454":            "[::1]:4454",
		"localhost:00080":       "localhost:80",
		"https://127.0.0.1:443": "",
		"127.0.0.1":             "",
		"127.0.0.1:65536":       "",
		"127.0.0.1:http":        "",
	} {
		got, err := parseListen(in)
		if want == "" {
			if err == nil {
				t.Errorf("parseListen(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("parseListen(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "4096": 4096, "1KiB": 1024, "64MiB": 64 << 20, "1 GB": 1e9, "2k": 2048, "3mb": 3e6, "7B": 7,
		"1.5MiB": 3 << 19, "": -1, "MiB": -1, "1.5B": -1, "1TiB": -1, "-1": -1, "99999999999GiB": -1,
	} {
		got, err := parseSize(in)
		if want < 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestCheckAppPattern(t *testing.T) {
	good := []string{"*", "com.acme.app", "com.acme.*"}
	bad := []string{"", "com acme", "com.*.x", "*.acme", ".*", ".com"}
	for _, p := range good {
		if err := checkAppPattern(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range bad {
		if checkAppPattern(p) == nil {
			t.Errorf("%q accepted", p)
		}
	}
}
