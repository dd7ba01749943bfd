// Package api serves edgelog's HTTP Events API, a
// JSON/NDJSON interface shaped like Actyx's v2 API, in front of a Backend.
//
// Every endpoint lives below BasePath. POST /auth exchanges an app manifest
// for a bearer token signed with the node's key; every other endpoint
// requires it. Errors are an HTTP status plus {"code":"ERR_…","message":"…"}
// (see Error and the Code constants). An app id that is not allowed is
// answered with 403 ERR_APP_UNAUTHORIZED, so that clients renewing tokens on
// 401 do not loop.
//
// Query and subscription answers are NDJSON (one JSON value per line, see
// EventLine, OffsetsLine, TimeTravelLine, DiagnosticLine). An error the
// Backend reports before the first line is answered with an HTTP status like
// any other; one that comes later becomes a diagnostic line that ends the
// answer.
//
// stream_test.go covers every streamed endpoint's lines, bounds and
// diagnostics against one backend, and is longer than 500 lines for it.
package api

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/edgelog/edgelog/event"
)

// Defaults of Config's zero fields.
const (
	DefaultTokenTTL        = 24 * time.Hour  // Config.TokenTTL
	DefaultMaxRequestBytes = 16 << 20        // Config.MaxRequestBytes
	DefaultShutdownTimeout = 5 * time.Second // Config.ShutdownTimeout
)

// maxAuthBytes bounds the body of POST /auth.
const maxAuthBytes = 64 << 10

// maxHeaderBytes bounds a request's line and headers.
const maxHeaderBytes = 64 << 10

// DefaultBodyTimeout is Config.BodyTimeout's default.
const DefaultBodyTimeout = 30 * time.Second

// Config configures a Server.
type Config struct {
	// Key is the node's private key; it signs bearer tokens. Required.
	Key ed25519.PrivateKey
	// DevMode accepts every app id matching com.example.*.
	DevMode bool
	// AllowedApps lists the app ids accepted besides dev mode: exact ids,
	// prefix patterns ending in ".*" (com.acme.* accepts com.acme.x and
	// com.acme.x.y), or "*" for every app.
	AllowedApps []string
	// TokenTTL is how long a token stays valid; 0 means DefaultTokenTTL.
	TokenTTL time.Duration
	// MaxRequestBytes bounds a request body; 0 means DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// BodyTimeout bounds how long a request body may take to arrive in
	// full, from when its handler starts reading it; a client slower than
	// that gets 408 ERR_REQUEST_TIMEOUT and the connection closes. Headers
	// have 10 s. 0 means DefaultBodyTimeout.
	BodyTimeout time.Duration
	// ShutdownTimeout bounds how long Serve waits for requests in flight
	// after its context is cancelled; 0 means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Now returns the current time, for token issue and expiry; nil means
	// time.Now. Tests inject a clock here.
	Now func() time.Time
}

// Server is the HTTP Events API in front of a Backend.
type Server struct {
	b      Backend
	cfg    Config
	log    *slog.Logger
	pub    ed25519.PublicKey
	nodeID string
	routes map[string]route
}

type route struct {
	method string
	h      http.HandlerFunc
}

// New returns a Server answering from b.
func New(b Backend, cfg Config) (*Server, error) {
	if b == nil {
		return nil, errors.New("api: nil backend")
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("api: Config.Key must be an Ed25519 private key (%d bytes), got %d bytes", ed25519.PrivateKeySize, len(cfg.Key))
	}
	if cfg.TokenTTL < 0 || cfg.MaxRequestBytes < 0 || cfg.ShutdownTimeout < 0 || cfg.BodyTimeout < 0 {
		return nil, errors.New("api: negative TokenTTL, MaxRequestBytes, BodyTimeout or ShutdownTimeout")
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.BodyTimeout == 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		b:      b,
		cfg:    cfg,
		log:    cfg.Logger,
		pub:    cfg.Key.Public().(ed25519.PublicKey),
		nodeID: b.NodeID(),
	}
	s.routes = map[string]route{
		PathAuth:               {http.MethodPost, s.handleAuth},
		PathNodeID:             {http.MethodGet, s.authed(s.handleNodeID)},
		PathNodeInfo:           {http.MethodGet, s.authed(s.handleNodeInfo)},
		PathOffsets:            {http.MethodGet, s.authed(s.handleOffsets)},
		PathPublish:            {http.MethodPost, s.authed(s.handlePublish)},
		PathQuery:              {http.MethodPost, s.authed(s.handleQuery)},
		PathSubscribe:          {http.MethodPost, s.authed(s.handleSubscribe)},
		PathSubscribeMonotonic: {http.MethodPost, s.authed(s.handleMonotonic)},
		PathConsumerGet:        {http.MethodPost, s.authed(s.handleConsumerGet)},
		PathConsumerPut:        {http.MethodPost, s.authed(s.handleConsumerPut)},
	}
	return s, nil
}

// Handler returns the http.Handler serving every endpoint of the API at its
// full path (BasePath included).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// shutdownKey marks request contexts of Serve with a context that is
// cancelled when Serve starts shutting down.
type shutdownKey struct{}

// Serve answers requests on ln until ctx is cancelled, then shuts down
// gracefully: it stops accepting, ends open subscriptions (each with a
// diagnostic line), and waits up to Config.ShutdownTimeout for the other
// requests before closing their connections. It returns nil after a shutdown
// caused by ctx, or the error that stopped serving otherwise. ln is closed
// when Serve returns. The errors net/http answers by itself (a malformed
// request line or header, oversized headers) are JSON errors too.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	shutdown, startShutdown := context.WithCancel(context.Background())
	defer startShutdown()
	base, cancelBase := context.WithCancel(context.WithValue(context.Background(), shutdownKey{}, shutdown))
	defer cancelBase()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(jsonErrorListener{ln}) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("api: shutting down", "addr", ln.Addr().String())
	startShutdown()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("api: graceful shutdown timed out; closing connections", "timeout", s.cfg.ShutdownTimeout)
		cancelBase()
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: serve: %w", err)
	}
	return nil
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("api: panic in handler", "path", r.URL.Path, "panic", v)
			writeError(w, newError(http.StatusInternalServerError, CodeInternal, "internal error"))
		}
	}()
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: s.cfg.BodyTimeout}
	}
	rt, ok := s.routes[r.URL.Path]
	if !ok {
		writeError(w, newError(http.StatusNotFound, CodeNotFound, "no endpoint %s", truncate(r.URL.Path, 200)))
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		writeError(w, newError(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s %s is not supported; use %s", r.Method, r.URL.Path, rt.method))
		return
	}
	rt.h(w, r)
}

// authedHandler is a handler for an authenticated request.
type authedHandler func(w http.ResponseWriter, r *http.Request, c claims)

// authed checks the bearer token before calling h.
func (s *Server) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r)
		if err != nil {
			if err.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="edgelog"`)
			}
			writeError(w, err)
			return
		}
		h(w, r, c)
	}
}

func (s *Server) authenticate(r *http.Request) (claims, *Error) {
	tok, err := bearerToken(r)
	if err != nil {
		return claims{}, err
	}
	c, err := parseToken(s.pub, tok)
	if err != nil {
		return claims{}, err
	}
	if c.NodeID != "" && c.NodeID != s.nodeID {
		return claims{}, newError(http.StatusUnauthorized, CodeTokenInvalid, "token was issued for another node")
	}
	if s.cfg.Now().Unix() >= c.ExpiresAt {
		return claims{}, newError(http.StatusUnauthorized, CodeTokenExpired, "token expired at %s; fetch a new one from POST %s",
			time.Unix(c.ExpiresAt, 0).UTC().Format(time.RFC3339), PathAuth)
	}
	if !appAllowed(c.AppID, s.cfg.DevMode, s.cfg.AllowedApps) {
		return claims{}, appUnauthorized(c.AppID)
	}
	return c, nil
}

func appUnauthorized(appID string) *Error {
	return newError(http.StatusForbidden, CodeAppUnauthorized, "app %q is not allowed on this node", appID)
}

func (s *Server) handleAuth(w http.ResponseWriter, r *http.Request) {
	m, ok := readRequest(w, r, min(s.cfg.MaxRequestBytes, maxAuthBytes), jsonObject[AuthRequest])
	if !ok {
		return
	}
	if err := checkManifest(m); err != nil {
		writeError(w, err)
		return
	}
	if !appAllowed(m.AppID, s.cfg.DevMode, s.cfg.AllowedApps) {
		writeError(w, appUnauthorized(m.AppID))
		return
	}
	now := s.cfg.Now()
	tok, e := issueToken(s.cfg.Key, claims{
		AppID:       m.AppID,
		DisplayName: m.DisplayName,
		Version:     m.Version,
		NodeID:      s.nodeID,
		IssuedAt:    now.Unix(),
		ExpiresAt:   now.Add(s.cfg.TokenTTL).Unix(),
	})
	if e != nil {
		s.internalError(w, r, fmt.Errorf("issuing token: %w", e))
		return
	}
	writeJSON(w, http.StatusOK, AuthResponse{Token: tok})
}

func (s *Server) handleNodeID(w http.ResponseWriter, _ *http.Request, _ claims) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(s.nodeID))
}

func (s *Server) handleNodeInfo(w http.ResponseWriter, r *http.Request, _ claims) {
	info, err := s.b.Info(r.Context())
	if err != nil {
		s.backendFailed(w, r, err)
		return
	}
	up := max(info.Uptime, 0)
	writeJSON(w, http.StatusOK, NodeInfoResponse{
		ConnectedNodes: info.ConnectedNodes,
		Peers:          append([]event.PeerInfo{}, info.Peers...),
		Uptime:         Uptime{Secs: uint64(up / time.Second), Nanos: uint32(up % time.Second)},
		Version:        info.Version,
		Consumers:      info.Consumers,
		Streams:        info.Streams,
	})
}

func (s *Server) handleOffsets(w http.ResponseWriter, r *http.Request, _ claims) {
	offs, err := s.b.Offsets(r.Context())
	if err != nil {
		s.backendFailed(w, r, err)
		return
	}
	resp := OffsetsResponse{Present: offs.Present, ToReplicate: offs.ToReplicate, Streams: offs.Streams}
	if resp.Present == nil {
		resp.Present = event.OffsetMap{}
	}
	if resp.ToReplicate == nil {
		resp.ToReplicate = map[event.StreamID]uint64{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request, c claims) {
	body, err := readBody(w, r, s.cfg.MaxRequestBytes)
	if err != nil {
		writeError(w, err)
		return
	}
	drafts, opts, err := decodePublishRequest(body)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(drafts) == 0 {
		writeJSON(w, http.StatusOK, PublishResponse{Data: []event.Meta{}})
		return
	}
	metas, e := s.publish(r.Context(), c.AppID, drafts, opts)
	if e != nil {
		s.backendFailed(w, r, e)
		return
	}
	if len(metas) != len(drafts) {
		s.internalError(w, r, fmt.Errorf("backend returned %d metas for %d events", len(metas), len(drafts)))
		return
	}
	writeJSON(w, http.StatusOK, PublishResponse{Data: metas})
}

func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request, _ claims) {
	req, ok := readRequest(w, r, s.cfg.MaxRequestBytes, decodeQuery)
	if !ok {
		return
	}
	s.stream(w, r, streamQuery, func(ctx context.Context) seq { return s.b.Query(ctx, req) })
}

func (s *Server) handleSubscribe(w http.ResponseWriter, r *http.Request, _ claims) {
	req, ok := readRequest(w, r, s.cfg.MaxRequestBytes, decodeSubscribe)
	if !ok {
		return
	}
	s.stream(w, r, streamSubscribe, func(ctx context.Context) seq { return s.b.Subscribe(ctx, req) })
}

func (s *Server) handleMonotonic(w http.ResponseWriter, r *http.Request, _ claims) {
	req, ok := readRequest(w, r, s.cfg.MaxRequestBytes, decodeMonotonic)
	if !ok {
		return
	}
	s.stream(w, r, streamMonotonic, func(ctx context.Context) seq { return s.b.SubscribeMonotonic(ctx, req) })
}

// backendFailed answers a Backend error, logging unexpected ones.
func (s *Server) backendFailed(w http.ResponseWriter, r *http.Request, err error) {
	apiErr, internal := backendError(err)
	if internal {
		s.log.Error("api: backend error", "path", r.URL.Path, "err", err)
	}
	writeError(w, apiErr)
}

func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("api: internal error", "path", r.URL.Path, "err", err)
	writeError(w, newError(http.StatusInternalServerError, CodeInternal, "internal error"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(newError(status, CodeInternal, "internal error"))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, e)
}
