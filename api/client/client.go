// Package client is a Go client of edgelog's HTTP Events API (package api):
// the transport of the edgelog CLI and of the Go SDK's remote mode.
//
// A Client authenticates lazily with its app manifest and renews its token
// once when the node answers 401 (expired or invalid token). It is safe for
// concurrent use. API errors are returned as *api.Error, which also matches
// the event package's sentinels with errors.Is.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// Manifest identifies the app to the node; the node issues tokens for it.
type Manifest struct {
	AppID       string
	DisplayName string
	Version     string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with hc instead of
// http.DefaultClient. hc should have no overall Timeout, since
// subscriptions last indefinitely; bound calls with their contexts instead.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// Client talks to one node's HTTP Events API.
type Client struct {
	base     string // scheme://host[:port], no trailing slash
	manifest Manifest
	hc       *http.Client

	authLock chan struct{} // a mutex that waiters can abandon via ctx
	mu       sync.Mutex
	token    string
}

// New returns a client of the node at baseURL (like http://127.0.0.1:4454;
// without a scheme http is assumed; a trailing /api/v2 is accepted). No
// request is made until the first call.
func New(baseURL string, m Manifest, opts ...Option) (*Client, error) {
	if m.AppID == "" {
		return nil, errors.New("client: manifest has no app id")
	}
	raw := strings.TrimSpace(baseURL)
	if raw == "" {
		return nil, errors.New("client: empty base URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("client: base URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: base URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: no host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: base URL %q: must not have a query or fragment", baseURL)
	}
	path := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), api.BasePath)
	c := &Client{
		base:     u.Scheme + "://" + u.Host + strings.TrimSuffix(path, "/"),
		manifest: m,
		hc:       http.DefaultClient,
		authLock: make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// NodeID returns the node's id.
func (c *Client) NodeID(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, http.MethodGet, api.PathNodeID, nil, "")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("client: node id: %w", err)
	}
	return strings.TrimSpace(string(body)), nil
}

// Info describes the node.
func (c *Client) Info(ctx context.Context) (event.NodeInfo, error) {
	var r api.NodeInfoResponse
	if err := c.callJSON(ctx, http.MethodGet, api.PathNodeInfo, nil, &r); err != nil {
		return event.NodeInfo{}, err
	}
	return event.NodeInfo{
		ConnectedNodes: r.ConnectedNodes,
		Peers:          r.Peers,
		Uptime:         time.Duration(r.Uptime.Secs)*time.Second + time.Duration(r.Uptime.Nanos),
		Version:        r.Version,
		Consumers:      r.Consumers,
		Streams:        r.Streams,
	}, nil
}

// Offsets returns what the node holds and what it knows to exist elsewhere.
func (c *Client) Offsets(ctx context.Context) (event.Offsets, error) {
	var r api.OffsetsResponse
	if err := c.callJSON(ctx, http.MethodGet, api.PathOffsets, nil, &r); err != nil {
		return event.Offsets{}, err
	}
	return event.Offsets{Present: r.Present, ToReplicate: r.ToReplicate, Streams: r.Streams}, nil
}

// PublishEvent is one event to publish: its tags and its JSON payload.
type PublishEvent = api.PublishEvent

// Publish publishes events atomically in the given order and returns where
// each now stands.
func (c *Client) Publish(ctx context.Context, events []PublishEvent) ([]event.Meta, error) {
	return c.PublishWith(ctx, api.PublishRequest{Data: events})
}

// PublishWith is Publish with the request's options: an idempotency key,
// a guard (IfNoneMatchSince). A reused idempotency key with other events
// returns an *api.Error matching event.ErrIdempotencyMismatch, a failed
// guard one matching event.ErrConflict, with its Conflict field set.
func (c *Client) PublishWith(ctx context.Context, req api.PublishRequest) ([]event.Meta, error) {
	if req.Data == nil {
		req.Data = []PublishEvent{}
	}
	events := req.Data
	var r api.PublishResponse
	if err := c.callJSON(ctx, http.MethodPost, api.PathPublish, req, &r); err != nil {
		return nil, err
	}
	if len(r.Data) != len(events) {
		return nil, fmt.Errorf("client: publish: node returned %d results for %d events", len(r.Data), len(events))
	}
	return r.Data, nil
}

// Consumer returns what this app's consumer name last reported to the
// node; found is false if it never did.
func (c *Client) Consumer(ctx context.Context, name string) (st event.ConsumerStatus, found bool, err error) {
	err = c.callJSON(ctx, http.MethodPost, api.PathConsumerGet, api.ConsumerGetRequest{Name: name}, &st)
	if ae, ok := errors.AsType[*api.Error](err); ok && ae.Status == http.StatusNotFound && ae.Code == api.CodeNotFound {
		return event.ConsumerStatus{}, false, nil
	}
	if err != nil {
		return event.ConsumerStatus{}, false, err
	}
	return st, true, nil
}

// PutConsumer stores st as what this app's consumer st.Name reports about
// itself (checkpoint, blocked streams, running).
func (c *Client) PutConsumer(ctx context.Context, st event.ConsumerStatus) error {
	var r struct{}
	return c.callJSON(ctx, http.MethodPost, api.PathConsumerPut, st, &r)
}

// The requests of Query, Subscribe and SubscribeMonotonic are the API's
// own (package api).
type (
	QueryRequest     = api.QueryRequest
	SubscribeRequest = api.SubscribeRequest
	MonotonicRequest = api.SubscribeMonotonicRequest
)

// Line is one line of a query or subscription answer. Type and Raw (the
// line's exact bytes) are always set; the other fields by Type: Event and
// CaughtUp for "event" (CaughtUp only on monotonic subscriptions), Offsets
// for "offsets", NewStart for "timeTravel", Severity and Message for
// "diagnostic". Lines of other types carry only Type and Raw; ignore them.
type Line struct {
	Type     string
	Raw      json.RawMessage
	Event    *api.EventLine
	CaughtUp bool
	Offsets  event.OffsetMap
	NewStart lamport.EventKey
	Severity string
	Message  string
}

// Query streams the answer of a query: event lines, then a final offsets
// line. Each range over the sequence sends the request anew; stopping early
// ends the request. The sequence yields at most one error, after which it
// ends; an answer cut short yields an error wrapping ErrStreamEnded.
func (c *Client) Query(ctx context.Context, req QueryRequest) iter.Seq2[Line, error] {
	return c.stream(ctx, api.PathQuery, req, func(l *Line) bool { return l.Type == api.LineOffsets })
}

// Subscribe streams a subscription: the backlog, one offsets line, then live
// events until ctx is cancelled or the caller stops iterating. The sequence
// yields at most one error, after which it ends.
func (c *Client) Subscribe(ctx context.Context, req SubscribeRequest) iter.Seq2[Line, error] {
	return c.stream(ctx, api.PathSubscribe, req, nil)
}

// SubscribeMonotonic streams a monotonic subscription: events in EventKey
// order with CaughtUp, until a timeTravel line (after which it ends and the
// caller restarts from NewStart), ctx is cancelled or the caller stops
// iterating. The sequence yields at most one error, after which it ends.
func (c *Client) SubscribeMonotonic(ctx context.Context, req MonotonicRequest) iter.Seq2[Line, error] {
	if req.LowerBound == nil {
		req.LowerBound = event.OffsetMap{} // the API wants the field
	}
	return c.stream(ctx, api.PathSubscribeMonotonic, req, func(l *Line) bool { return l.Type == api.LineTimeTravel })
}

// ErrStreamEnded is wrapped by the error a stream yields when the connection
// ends before the answer is complete (a query without its final offsets
// line, a subscription the node closed without saying why).
var ErrStreamEnded = errors.New("stream ended unexpectedly")

// stream posts body to path and yields the NDJSON lines of the answer. final
// reports whether a line completes the answer (nil: none does).
func (c *Client) stream(ctx context.Context, path string, body any, final func(*Line) bool) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		resp, err := c.do(ctx, http.MethodPost, path, body, api.ContentTypeNDJSON)
		if err != nil {
			yield(Line{}, err)
			return
		}
		defer resp.Body.Close()
		br := bufio.NewReaderSize(resp.Body, 64<<10)
		complete := false
		for {
			raw, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(raw)) > 0 {
				if err == io.EOF {
					// A last line without its newline is a cut line.
					yield(Line{}, fmt.Errorf("client: %s: truncated line: %w", path, ErrStreamEnded))
					return
				}
				raw = bytes.TrimRight(raw, "\r\n")
				l, derr := decodeLine(raw)
				if derr != nil {
					yield(Line{}, fmt.Errorf("client: %s: %w", path, derr))
					return
				}
				if (final != nil && final(&l)) || (l.Type == api.LineDiagnostic && l.Severity == api.SeverityError) {
					complete = true
				}
				if !yield(l, nil) {
					return
				}
			}
			if err == nil {
				continue
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				yield(Line{}, ctxErr)
				return
			}
			if err == io.EOF {
				if !complete {
					yield(Line{}, fmt.Errorf("client: %s: %w", path, ErrStreamEnded))
				}
				return
			}
			yield(Line{}, fmt.Errorf("client: %s: reading answer: %w", path, err))
			return
		}
	}
}

// wireLine has the fields of every known line type.
type wireLine struct {
	api.EventLine
	Offsets  event.OffsetMap  `json:"offsets"`
	NewStart lamport.EventKey `json:"newStart"`
	Severity string           `json:"severity"`
	Message  string           `json:"message"`
}

// decodeLine decodes one NDJSON line; raw becomes the Line's Raw.
func decodeLine(raw []byte) (Line, error) {
	var w wireLine
	if err := json.Unmarshal(raw, &w); err != nil {
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &head) == nil && !knownType(head.Type) {
			// An unknown line type whose fields clash with known names.
			return Line{Type: head.Type, Raw: raw}, nil
		}
		return Line{}, fmt.Errorf("malformed line %.200q: %w", raw, err)
	}
	l := Line{Type: w.Type, Raw: raw}
	switch w.Type {
	case api.LineEvent:
		ev := w.EventLine
		l.Event = &ev
		l.CaughtUp = ev.CaughtUp != nil && *ev.CaughtUp
	case api.LineOffsets:
		l.Offsets = w.Offsets
		if l.Offsets == nil {
			l.Offsets = event.OffsetMap{}
		}
	case api.LineTimeTravel:
		l.NewStart = w.NewStart
	case api.LineDiagnostic:
		l.Severity, l.Message = w.Severity, w.Message
	}
	return l, nil
}

func knownType(t string) bool {
	switch t {
	case api.LineEvent, api.LineOffsets, api.LineTimeTravel, api.LineDiagnostic:
		return true
	}
	return false
}

// callJSON sends body (if not nil) as JSON and decodes a JSON answer into out.
func (c *Client) callJSON(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.do(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("client: %s: decoding answer: %w", path, err)
	}
	return nil
}

// do sends an authenticated request and returns a 2xx response. On 401 for
// an expired or invalid token it fetches a new token and retries once.
// Other answers become *api.Error.
func (c *Client) do(ctx context.Context, method, path string, body any, accept string) (*http.Response, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("client: %s: encoding request: %w", path, err)
		}
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.getToken(ctx, "")
		if err != nil {
			return nil, err
		}
		resp, err := c.send(ctx, method, path, payload, accept, tok)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		apiErr := readError(resp)
		if attempt == 0 && apiErr.Status == http.StatusUnauthorized &&
			(apiErr.Code == api.CodeTokenExpired || apiErr.Code == api.CodeTokenInvalid) {
			if _, err := c.getToken(ctx, tok); err != nil {
				return nil, err
			}
			continue
		}
		return nil, apiErr
	}
}

func (c *Client) send(ctx context.Context, method, path string, payload []byte, accept, tok string) (*http.Response, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", path, err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	return resp, nil
}

// getToken returns the current token, fetching one if there is none or if
// the current one is stale (the caller saw it rejected).
func (c *Client) getToken(ctx context.Context, stale string) (string, error) {
	c.mu.Lock()
	tok := c.token
	c.mu.Unlock()
	if tok != "" && tok != stale {
		return tok, nil
	}
	select {
	case c.authLock <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-c.authLock }()
	c.mu.Lock()
	tok = c.token
	c.mu.Unlock()
	if tok != "" && tok != stale { // another caller renewed it meanwhile
		return tok, nil
	}
	tok, err := c.authenticate(ctx)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.token = tok
	c.mu.Unlock()
	return tok, nil
}

func (c *Client) authenticate(ctx context.Context) (string, error) {
	payload, err := json.Marshal(api.AuthRequest{
		AppID: c.manifest.AppID, DisplayName: c.manifest.DisplayName, Version: c.manifest.Version,
	})
	if err != nil {
		return "", fmt.Errorf("client: auth: %w", err)
	}
	resp, err := c.send(ctx, http.MethodPost, api.PathAuth, payload, "application/json", "")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", readError(resp)
	}
	var r api.AuthResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return "", fmt.Errorf("client: auth: decoding answer: %w", err)
	}
	if r.Token == "" {
		return "", errors.New("client: auth: node returned no token")
	}
	return r.Token, nil
}

// readError turns a non-2xx answer into an *api.Error and closes its body.
func readError(resp *http.Response) *api.Error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &api.Error{Status: resp.StatusCode}
	if json.Unmarshal(body, e) != nil || e.Code == "" {
		e.Code = ""
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 512 {
			e.Message = e.Message[:512] + "…"
		}
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	e.Status = resp.StatusCode
	return e
}
