package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/spf13/pflag"

	"github.com/edgelog/edgelog/api"
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
	Storage         store.Storage     // zero fields take the node's defaults
	IdempotencyTTL  time.Duration     // 0: the node's default
	Replication     *node.Replication // nil: replication is off
	LogLevel        slog.Level
	LogFormat       string                      // text or json
	Routes          []expiry.Route              // routing rules (streams.go)
	Streams         map[string]expiry.Retention // named streams' retention
}

// fileConfig is the YAML configuration file. See config.example.yaml.
type fileConfig struct {
	Data       yString     `yaml:"data"`
	API        yString     `yaml:"api"`
	Durability yString     `yaml:"durability"`
	Auth       fileAuth    `yaml:"auth"`
	Limits     fileLimits  `yaml:"limits"`
	Storage    fileStorage `yaml:"storage"`
	Repl       fileRepl    `yaml:"replication"`
	Log        fileLog     `yaml:"log"`
	Streams    yStreams    `yaml:"streams"` // streams.go
	Routes     yRoutes     `yaml:"routes"`
}

type fileRepl struct {
	Enabled   yBool    `yaml:"enabled"`
	Listen    yStrings `yaml:"listen"`
	Bootstrap yStrings `yaml:"bootstrap"`
	Swarm     yString  `yaml:"swarm"`
	SwarmKey  yString  `yaml:"swarmKey"`
	MDNS      yBool    `yaml:"mdns"`
}

type fileAuth struct {
	DevMode     yBool     `yaml:"devMode"`
	AllowedApps yStrings  `yaml:"allowedApps"`
	TokenTTL    yDuration `yaml:"tokenTTL"`
}

type fileLimits struct {
	MaxPayloadBytes     ySize `yaml:"maxPayloadBytes"`
	MaxTagsPerEvent     yInt  `yaml:"maxTagsPerEvent"`
	MaxTagBytes         ySize `yaml:"maxTagBytes"`
	MaxEventsPerPublish yInt  `yaml:"maxEventsPerPublish"`
	MaxRequestBytes     ySize `yaml:"maxRequestBytes"`
}

type fileStorage struct {
	MemTableSize   ySize     `yaml:"memTableSize"`
	BlockCacheSize ySize     `yaml:"blockCacheSize"`
	NumCompactors  yInt      `yaml:"numCompactors"`
	MinFreeBytes   ySize     `yaml:"minFreeBytes"`
	Profile        yString   `yaml:"profile"`
	MaxDBBytes     ySize     `yaml:"maxDBBytes"`
	TrimInterval   yDuration `yaml:"trimInterval"`
	IdempotencyTTL yDuration `yaml:"idempotencyTTL"`
}

type fileLog struct {
	Level  yString `yaml:"level"`
	Format yString `yaml:"format"`
}

// yPos is where a value stands in the configuration file; Line 0 means the
// key is absent.
type yPos struct{ Line, Col int }

func (p yPos) set() bool { return p.Line > 0 }

func posOf(n ast.Node) yPos {
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return yPos{Line: tk.Position.Line, Col: tk.Position.Column}
	}
	return yPos{Line: 1, Col: 1}
}

// valueError is a value of the configuration file of the wrong kind.
type valueError struct {
	tok  *token.Token
	want string
}

func (e *valueError) Error() string { return "want " + e.want }

func wrongKind(n ast.Node, want string) error {
	return &valueError{tok: n.GetToken(), want: want}
}

// isNull reports whether n is an explicit or implicit YAML null (a key
// without value), which leaves a setting unset.
func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return ok
}

type yString struct {
	V string
	yPos
}

// UnmarshalYAML accepts a string.
func (y *yString) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	s, ok := n.(*ast.StringNode)
	if !ok {
		return wrongKind(n, "a string")
	}
	y.V, y.yPos = s.Value, posOf(n)
	return nil
}

type yBool struct {
	V bool
	yPos
}

// UnmarshalYAML accepts true or false.
func (y *yBool) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	b, ok := n.(*ast.BoolNode)
	if !ok {
		return wrongKind(n, "true or false")
	}
	y.V, y.yPos = b.Value, posOf(n)
	return nil
}

type yStrings struct {
	V []string
	yPos
}

// UnmarshalYAML accepts a sequence of strings.
func (y *yStrings) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		return wrongKind(n, "a list of strings")
	}
	y.V = []string{}
	for _, v := range seq.Values {
		s, ok := v.(*ast.StringNode)
		if !ok {
			return wrongKind(v, "a string")
		}
		y.V = append(y.V, s.Value)
	}
	y.yPos = posOf(n)
	return nil
}

type yDuration struct {
	V time.Duration
	yPos
}

// UnmarshalYAML accepts a Go duration string such as "24h" or "90m".
func (y *yDuration) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	s, ok := n.(*ast.StringNode)
	if !ok {
		return wrongKind(n, `a duration such as "24h" or "90m"`)
	}
	d, err := time.ParseDuration(s.Value)
	if err != nil {
		return wrongKind(n, `a duration such as "24h" or "90m"`)
	}
	y.V, y.yPos = d, posOf(n)
	return nil
}

type yInt struct {
	V int64
	yPos
}

// UnmarshalYAML accepts an integer.
func (y *yInt) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		return wrongKind(n, "an integer")
	}
	switch v := in.Value.(type) {
	case int64:
		y.V = v
	case uint64:
		if v > math.MaxInt64 {
			return wrongKind(n, "a smaller integer")
		}
		y.V = int64(v)
	default:
		return wrongKind(n, "an integer")
	}
	y.yPos = posOf(n)
	return nil
}

type ySize struct {
	V int64
	yPos
}

const sizeKinds = `a size in bytes: an integer or a string such as "64MiB"`

// UnmarshalYAML accepts a number of bytes: an integer, or a string with a
// unit (B, KB, MB, GB, KiB, MiB, GiB).
func (y *ySize) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	switch v := n.(type) {
	case *ast.IntegerNode:
		var i yInt
		if err := i.UnmarshalYAML(n); err != nil {
			return wrongKind(n, sizeKinds)
		}
		y.V = i.V
	case *ast.StringNode:
		sz, err := parseSize(v.Value)
		if err != nil {
			return wrongKind(n, sizeKinds)
		}
		y.V = sz
	default:
		return wrongKind(n, sizeKinds)
	}
	y.yPos = posOf(n)
	return nil
}

// parseSize parses a byte size such as "4096", "64MiB" or "1 GB", with the
// same units as the retention settings (expiry.ParseSize).
func parseSize(s string) (int64, error) { return expiry.ParseSize(s) }

// loadFile reads and strictly decodes the configuration file at path.
// Unknown keys and values of the wrong type are errors naming the key and
// its line.
func loadFile(path string) (*fileConfig, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var fc fileConfig
	if err := yaml.UnmarshalWithOptions(src, &fc, yaml.Strict()); err != nil {
		return nil, describeYAMLError(path, src, err)
	}
	return &fc, nil
}

// describeYAMLError turns a decoding error into "FILE:LINE:COL: KEY: what".
func describeYAMLError(path string, src []byte, err error) error {
	var (
		tok *token.Token
		msg string
	)
	var ve *valueError
	var ye yaml.Error
	switch {
	case errors.As(err, &ve):
		tok = ve.tok
		msg = "wrong type " + describeToken(tok) + ": " + ve.Error()
	case errors.As(err, &ye):
		tok = ye.GetToken()
		var uf *yaml.UnknownFieldError
		var te *yaml.TypeError
		var ne *yaml.UnexpectedNodeTypeError
		switch {
		case errors.As(err, &uf):
			msg = "unknown key"
		case errors.As(err, &te), errors.As(err, &ne):
			msg = "wrong type " + describeToken(tok) + ": want a mapping"
		default:
			msg = ye.GetMessage()
		}
	default:
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if tok == nil || tok.Position == nil {
		return fmt.Errorf("config file %s: %s: %w", path, msg, err)
	}
	p := tok.Position
	if key := keyPathAt(src, p.Line, p.Column); key != "" {
		msg = key + ": " + msg
	}
	return &fileError{msg: fmt.Sprintf("%s:%d:%d: %s", path, p.Line, p.Column, msg), err: err}
}

// fileError is a problem in the configuration file. Its message is short
// (without the YAML library's source excerpt); Unwrap gives the YAML error.
type fileError struct {
	msg string
	err error
}

func (e *fileError) Error() string { return "invalid configuration: " + e.msg }
func (e *fileError) Unwrap() error { return e.err }

func describeToken(tok *token.Token) string {
	if tok == nil {
		return ""
	}
	v := tok.Value
	if tok.Type == token.MappingStartType || tok.Type == token.SequenceStartType {
		v = tok.Origin
	}
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	return strconv.Quote(v)
}

// keyPathAt returns the dotted path (like "auth.devMode") of the key or value
// at line:col of the YAML document src, or "".
func keyPathAt(src []byte, line, col int) string {
	f, err := parser.ParseBytes(src, 0)
	if err != nil {
		return ""
	}
	for _, doc := range f.Docs {
		if p, ok := findPath(doc.Body, "", line, col); ok {
			return p
		}
	}
	return ""
}

func findPath(n ast.Node, prefix string, line, col int) (string, bool) {
	at := func(x ast.Node) bool {
		if x == nil {
			return false
		}
		tk := x.GetToken()
		return tk != nil && tk.Position != nil && tk.Position.Line == line && tk.Position.Column == col
	}
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		for _, mv := range v.Values {
			if p, ok := findPath(mv, prefix, line, col); ok {
				return p, true
			}
		}
	case *ast.MappingValueNode:
		key := join(v.Key.GetToken().Value)
		if at(v.Key) || at(v.Value) || at(v) {
			return key, true
		}
		return findPath(v.Value, key, line, col)
	case *ast.SequenceNode:
		for i, e := range v.Values {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			if at(e) {
				return p, true
			}
			if q, ok := findPath(e, p, line, col); ok {
				return q, true
			}
		}
	case *ast.TagNode:
		return findPath(v.Value, prefix, line, col)
	case *ast.AnchorNode:
		return findPath(v.Value, prefix, line, col)
	}
	return "", false
}

// origin says where a setting came from, for error messages.
type origin struct {
	kind string // "flag", "env", "file" or "default"
	name string // flag name, variable name or key path
	file string
	pos  yPos
}

func (o origin) String() string {
	switch o.kind {
	case "flag":
		return "--" + o.name
	case "env":
		return o.name
	case "file":
		return fmt.Sprintf("%s:%d:%d: %s", o.file, o.pos.Line, o.pos.Col, o.name)
	}
	return "default " + o.name
}

// configError collects the problems found in the settings.
type configError struct {
	problems []string
	fromFlag bool // some problem is in a flag: a usage error
}

func (e *configError) Error() string {
	if len(e.problems) == 1 {
		return "invalid configuration: " + e.problems[0]
	}
	return "invalid configuration:\n  " + strings.Join(e.problems, "\n  ")
}

func (e *configError) add(o origin, format string, args ...any) {
	e.problems = append(e.problems, o.String()+": "+fmt.Sprintf(format, args...))
	if o.kind == "flag" {
		e.fromFlag = true
	}
}

// resolver picks each setting from, in this order: a flag given on the
// command line, an environment variable, the configuration file, a default.
type resolver struct {
	flags    *pflag.FlagSet
	env      func(string) (string, bool)
	file     *fileConfig
	fileName string
	errs     configError
}

// raw returns the textual value of a setting from a flag or the environment,
// or reports that neither sets it.
func (r *resolver) raw(flag, env string) (string, origin, bool) {
	if flag != "" && r.flags != nil && r.flags.Changed(flag) {
		f := r.flags.Lookup(flag)
		v := f.Value.String()
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			v = strings.Join(sv.GetSlice(), ",")
		}
		return v, origin{kind: "flag", name: flag}, true
	}
	if env != "" {
		if v, ok := r.env(env); ok {
			return v, origin{kind: "env", name: env}, true
		}
	}
	return "", origin{}, false
}

func (r *resolver) fileOrigin(key string, p yPos) origin {
	return origin{kind: "file", name: key, file: r.fileName, pos: p}
}

func (r *resolver) str(flag, env, key string, fv yString, def string) (string, origin) {
	if v, o, ok := r.raw(flag, env); ok {
		return v, o
	}
	if fv.set() {
		return fv.V, r.fileOrigin(key, fv.yPos)
	}
	return def, origin{kind: "default", name: key}
}

func (r *resolver) boolean(flag, env, key string, fv yBool, def bool) bool {
	if v, o, ok := r.raw(flag, env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			r.errs.add(o, "%q is not a boolean (want true or false)", v)
		}
		return b
	}
	if fv.set() {
		return fv.V
	}
	return def
}

// duration returns a duration setting; ok is false if it did not parse
// (and the problem was recorded).
func (r *resolver) duration(flag, env, key string, fv yDuration, def time.Duration) (d time.Duration, o origin, ok bool) {
	if v, o, set := r.raw(flag, env); set {
		d, err := time.ParseDuration(v)
		if err != nil {
			r.errs.add(o, "%q is not a duration (want something like 24h or 90m)", v)
			return 0, o, false
		}
		return d, o, true
	}
	if fv.set() {
		return fv.V, r.fileOrigin(key, fv.yPos), true
	}
	return def, origin{kind: "default", name: key}, true
}

func (r *resolver) list(flag, env, key string, fv yStrings) ([]string, origin) {
	if v, o, ok := r.raw(flag, env); ok {
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, o
	}
	if fv.set() {
		return fv.V, r.fileOrigin(key, fv.yPos)
	}
	return nil, origin{kind: "default", name: key}
}

// positive returns a file-only numeric setting, checking that it is > 0 and
// at most maxV; 0 means unset.
func (r *resolver) positive(key string, v int64, p yPos, maxV int64) int64 {
	if !p.set() {
		return 0
	}
	if v <= 0 || v > maxV {
		r.errs.add(r.fileOrigin(key, p), "%d is out of range (want 1 to %d)", v, maxV)
		return 0
	}
	return v
}

// resolveSettings computes the settings of `edgelog run` from its flags and
// the environment, reading the configuration file they name, and validates
// them. A *configError lists every problem found.
func resolveSettings(flags *pflag.FlagSet, env func(string) (string, bool)) (settings, error) {
	r := &resolver{flags: flags, env: env, file: &fileConfig{}}
	var s settings
	if path, _, ok := r.raw("config", envConfig); ok {
		fc, err := loadFile(path)
		if err != nil {
			return s, err
		}
		s.ConfigFile, r.file, r.fileName = path, fc, path
	}
	fc := r.file

	var o origin
	s.Data, o = r.str("data", envData, "data", fc.Data, defaultData)
	if strings.TrimSpace(s.Data) == "" {
		r.errs.add(o, "the data directory must not be empty")
	}

	s.Listen, o = r.str("api", envAPI, "api", fc.API, defaultListen)
	if listen, err := parseListen(s.Listen); err != nil {
		r.errs.add(o, "%v", err)
	} else {
		s.Listen = listen
	}

	var dur string
	dur, o = r.str("durability", envDurability, "durability", fc.Durability, string(store.DurabilitySync))
	s.Durability = store.Durability(dur)
	if s.Durability != store.DurabilitySync && s.Durability != store.DurabilityAsync {
		r.errs.add(o, "%q is not a durability (want sync or async)", dur)
	}

	s.DevMode = r.boolean("dev-mode", envDevMode, "auth.devMode", fc.Auth.DevMode, true)

	s.AllowedApps, o = r.list("allowed-apps", envAllowedApps, "auth.allowedApps", fc.Auth.AllowedApps)
	for _, p := range s.AllowedApps {
		if err := checkAppPattern(p); err != nil {
			r.errs.add(o, "%v", err)
		}
	}

	var ok bool
	s.TokenTTL, o, ok = r.duration("token-ttl", envTokenTTL, "auth.tokenTTL", fc.Auth.TokenTTL, api.DefaultTokenTTL)
	if ok && s.TokenTTL <= 0 {
		r.errs.add(o, "%v: the token lifetime must be positive", s.TokenTTL)
	}

	lim := fc.Limits
	s.Limits = store.Limits{
		MaxPayloadBytes:     int(r.positive("limits.maxPayloadBytes", lim.MaxPayloadBytes.V, lim.MaxPayloadBytes.yPos, math.MaxInt32)),
		MaxTagsPerEvent:     int(r.positive("limits.maxTagsPerEvent", lim.MaxTagsPerEvent.V, lim.MaxTagsPerEvent.yPos, math.MaxInt32)),
		MaxTagBytes:         int(r.positive("limits.maxTagBytes", lim.MaxTagBytes.V, lim.MaxTagBytes.yPos, math.MaxInt32)),
		MaxEventsPerPublish: int(r.positive("limits.maxEventsPerPublish", lim.MaxEventsPerPublish.V, lim.MaxEventsPerPublish.yPos, math.MaxInt32)),
	}
	s.Limits = s.Limits.WithDefaults() // effective values, so they can be logged
	s.MaxRequestBytes = r.positive("limits.maxRequestBytes", lim.MaxRequestBytes.V, lim.MaxRequestBytes.yPos, math.MaxInt64)
	if s.MaxRequestBytes == 0 {
		s.MaxRequestBytes = api.DefaultMaxRequestBytes
	}

	st := fc.Storage
	s.Storage = store.Storage{
		MemTableSize:   r.positive("storage.memTableSize", st.MemTableSize.V, st.MemTableSize.yPos, 1<<40),
		BlockCacheSize: r.positive("storage.blockCacheSize", st.BlockCacheSize.V, st.BlockCacheSize.yPos, 1<<40),
		NumCompactors:  int(r.positive("storage.numCompactors", st.NumCompactors.V, st.NumCompactors.yPos, 64)),
		MinFreeBytes:   r.positive("storage.minFreeBytes", st.MinFreeBytes.V, st.MinFreeBytes.yPos, math.MaxInt64),
		MaxDBBytes:     r.positive("storage.maxDBBytes", st.MaxDBBytes.V, st.MaxDBBytes.yPos, math.MaxInt64),
	}
	profile, o := r.str("profile", envProfile, "storage.profile", st.Profile, string(store.ProfileAuto))
	if p, err := store.ParseProfile(profile); err != nil {
		r.errs.add(o, "%q is not a profile (want auto, default, large or low-memory)", profile)
	} else {
		s.Storage.Profile = p
	}
	if st.IdempotencyTTL.set() {
		if s.IdempotencyTTL = st.IdempotencyTTL.V; s.IdempotencyTTL <= 0 {
			r.errs.add(r.fileOrigin("storage.idempotencyTTL", st.IdempotencyTTL.yPos), "%v: how long idempotency keys are kept must be positive", s.IdempotencyTTL)
		}
	}
	if st.TrimInterval.set() {
		// 0 in the file means never; to the node, 0 means the profile's.
		s.Storage.TrimInterval = st.TrimInterval.V
		if s.Storage.TrimInterval <= 0 {
			s.Storage.TrimInterval = -1
		}
	}
	if s.Storage.MemTableSize > 0 && s.Storage.MemTableSize < 1<<20 {
		r.errs.add(r.fileOrigin("storage.memTableSize", st.MemTableSize.yPos), "%d is too small (want at least 1MiB)", s.Storage.MemTableSize)
	}
	s.Routes, s.Streams = r.streams(fc)
	if s.Storage.NumCompactors == 1 {
		r.errs.add(r.fileOrigin("storage.numCompactors", st.NumCompactors.yPos), "the database needs at least 2 compactors")
	}

	if r.boolean("replicate", envReplicate, "replication.enabled", fc.Repl.Enabled, true) {
		rc := &node.Replication{}
		rc.Listen, o = r.list("listen", envListen, "replication.listen", fc.Repl.Listen)
		if len(rc.Listen) == 0 {
			rc.Listen = defaultP2PListen
		}
		for _, a := range rc.Listen {
			if _, err := multiaddr.NewMultiaddr(a); err != nil {
				r.errs.add(o, "%q is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/4455): %v", a, err)
			}
		}
		rc.Bootstrap, o = r.list("bootstrap", envBootstrap, "replication.bootstrap", fc.Repl.Bootstrap)
		for _, a := range rc.Bootstrap {
			if ma, err := multiaddr.NewMultiaddr(a); err != nil {
				r.errs.add(o, "%q is not a multiaddr: %v", a, err)
			} else if _, err := peer.AddrInfoFromP2pAddr(ma); err != nil {
				r.errs.add(o, "%q must end in /p2p/<NodeId>: %v", a, err)
			}
		}
		rc.Swarm, _ = r.str("swarm", envSwarm, "replication.swarm", fc.Repl.Swarm, "default")
		rc.SwarmKeyFile, _ = r.str("swarm-key", envSwarmKey, "replication.swarmKey", fc.Repl.SwarmKey, "")
		rc.MDNS = r.boolean("mdns", envMDNS, "replication.mdns", fc.Repl.MDNS, true)
		s.Replication = rc
	}

	var level string
	level, o = r.str("log-level", envLogLevel, "log.level", fc.Log.Level, defaultLogLevel)
	if err := s.LogLevel.UnmarshalText([]byte(level)); err != nil || !validLevel(level) {
		r.errs.add(o, "%q is not a log level (want debug, info, warn or error)", level)
	}
	s.LogFormat, o = r.str("log-format", envLogFormat, "log.format", fc.Log.Format, defaultLogFormat)
	if s.LogFormat != "text" && s.LogFormat != "json" {
		r.errs.add(o, "%q is not a log format (want text or json)", s.LogFormat)
	}

	if len(r.errs.problems) > 0 {
		return s, &r.errs
	}
	return s, nil
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
