package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/node"
	"github.com/edgelog/edgelog/replicate/p2p"
	"github.com/edgelog/edgelog/store"
)

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
	r.server(&s)
	r.limits(&s)
	r.storage(&s)
	s.Routes, s.Streams = r.streams(r.file)
	s.Replication = r.replication()
	r.logging(&s)
	if len(r.errs.problems) > 0 {
		return s, &r.errs
	}
	return s, nil
}

// server resolves the data directory, the HTTP API's address, durability
// and authentication.
func (r *resolver) server(s *settings) {
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
}

// limits resolves the limits on events and requests (file only).
func (r *resolver) limits(s *settings) {
	lim := r.file.Limits
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
	s.BodyTimeout = api.DefaultBodyTimeout
	if d := lim.RequestBodyTimeout; d.set() {
		if d.V <= 0 {
			r.errs.add(r.fileOrigin("limits.requestBodyTimeout", d.yPos), "%v: the request body timeout must be positive", d.V)
		}
		s.BodyTimeout = d.V
	}
}

// storage resolves the storage profile and the sizes that override it.
func (r *resolver) storage(s *settings) {
	st := r.file.Storage
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
	if s.Storage.NumCompactors == 1 {
		r.errs.add(r.fileOrigin("storage.numCompactors", st.NumCompactors.yPos), "the database needs at least 2 compactors")
	}
}

// replication resolves peer-to-peer replication; nil if it is off.
func (r *resolver) replication() *node.Replication {
	fc := r.file
	if !r.boolean("replicate", envReplicate, "replication.enabled", fc.Repl.Enabled, true) {
		return nil
	}
	rc := &node.Replication{}
	var o origin
	rc.Listen, o = r.list("listen", envListen, "replication.listen", fc.Repl.Listen)
	if len(rc.Listen) == 0 {
		rc.Listen = defaultP2PListen
	}
	for _, a := range rc.Listen {
		if err := node.CheckListen(a); err != nil {
			r.errs.add(o, "%v", err)
		}
	}
	rc.Bootstrap, o = r.list("bootstrap", envBootstrap, "replication.bootstrap", fc.Repl.Bootstrap)
	for _, a := range rc.Bootstrap {
		if _, err := node.ParseBootstrap(a); err != nil {
			r.errs.add(o, "%v", err)
		}
	}
	rc.Swarm, _ = r.str("swarm", envSwarm, "replication.swarm", fc.Repl.Swarm, "default")
	rc.SwarmKeyFile, _ = r.str("swarm-key", envSwarmKey, "replication.swarmKey", fc.Repl.SwarmKey, "")
	rc.MDNS = r.boolean("mdns", envMDNS, "replication.mdns", fc.Repl.MDNS, true)
	rc.MaxPeers = int(r.positive("replication.maxPeers", fc.Repl.MaxPeers.V, fc.Repl.MaxPeers.yPos, 1<<16))
	if rc.MaxPeers == 0 {
		rc.MaxPeers = p2p.DefaultMaxPeers // the effective value, so it can be logged
	}
	return rc
}

// logging resolves the log level and format.
func (r *resolver) logging(s *settings) {
	fc := r.file
	level, o := r.str("log-level", envLogLevel, "log.level", fc.Log.Level, defaultLogLevel)
	if err := s.LogLevel.UnmarshalText([]byte(level)); err != nil || !validLevel(level) {
		r.errs.add(o, "%q is not a log level (want debug, info, warn or error)", level)
	}
	s.LogFormat, o = r.str("log-format", envLogFormat, "log.format", fc.Log.Format, defaultLogFormat)
	if s.LogFormat != "text" && s.LogFormat != "json" {
		r.errs.add(o, "%q is not a log format (want text or json)", s.LogFormat)
	}
}
