package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

// OptionsPublisher is a Backend that also publishes with options
// (idempotency keys, guards). *node.Node implements it. Without it, a
// publish request using those fields is refused with 400.
type OptionsPublisher interface {
	PublishWith(ctx context.Context, appID string, drafts []event.Draft, opts event.PublishOptions) ([]event.Meta, error)
}

// ConsumerBackend is a Backend that keeps the status of durable consumers
// per app (PathConsumerGet, PathConsumerPut). *node.Node implements it.
// Without it, those endpoints answer 404.
type ConsumerBackend interface {
	Consumer(ctx context.Context, appID, name string) (event.ConsumerStatus, bool, error)
	PutConsumer(ctx context.Context, appID string, s event.ConsumerStatus) error
}

// Conflict details an ERR_CONFLICT answer: the newest events (at most 16)
// that made the guard fail, as query answers render them, in ascending
// EventKey order.
type Conflict struct {
	Changed []EventLine `json:"changed"`
	// More is true when more events conflict than Changed lists.
	More bool `json:"more"`
}

// bookkeepingError maps the errors of idempotent and guarded publishing.
func bookkeepingError(err error) (*Error, bool) {
	if ce, ok := errors.AsType[*event.ConflictError](err); ok {
		e := newError(http.StatusConflict, CodeConflict, "%s", err.Error())
		e.Conflict = &Conflict{Changed: make([]EventLine, 0, len(ce.Changed)), More: ce.More}
		for i := range ce.Changed {
			ev := &ce.Changed[i]
			payload, perr := event.PayloadToJSON(ev.Payload)
			if perr != nil {
				payload = []byte("null")
			}
			e.Conflict.Changed = append(e.Conflict.Changed, EventLine{
				Type: LineEvent, Lamport: ev.Lamport, Stream: ev.Stream, Offset: ev.Offset,
				Timestamp: ev.Timestamp, Tags: ev.Tags, AppID: ev.AppID, Payload: payload,
			})
		}
		return e, true
	}
	switch {
	case errors.Is(err, event.ErrConflict):
		return newError(http.StatusConflict, CodeConflict, "%s", err.Error()), true
	case errors.Is(err, event.ErrIdempotencyMismatch):
		return newError(http.StatusConflict, CodeIdempotencyMismatch, "%s", err.Error()), true
	}
	return nil, false
}

// publishOptions checks the optional fields of a publish body.
func publishOptions(req *PublishRequest) (event.PublishOptions, *Error) {
	opts := event.PublishOptions{IdempotencyKey: req.IdempotencyKey}
	if k := req.IdempotencyKey; len(k) > event.MaxIdempotencyKeyLen || strings.IndexByte(k, 0) >= 0 {
		return opts, badRequest("idempotencyKey: want at most %d bytes without NUL", event.MaxIdempotencyKeyLen)
	}
	if g := req.IfNoneMatchSince; g != nil {
		q, err := parseQuery(g.Query)
		if err != nil {
			err.Message = "ifNoneMatchSince.query: " + err.Message
			return opts, err
		}
		if g.After != (lamport.EventKey{}) && !event.StreamID(g.After.Stream).Valid() {
			return opts, badRequest("ifNoneMatchSince.after: invalid stream id %q", truncate(g.After.Stream, event.MaxStreamIDLen))
		}
		opts.Guard = &event.Guard{Query: q, After: g.After}
	}
	return opts, nil
}

// publish publishes through the backend, with options if there are any.
func (s *Server) publish(ctx context.Context, appID string, drafts []event.Draft, opts event.PublishOptions) ([]event.Meta, error) {
	if opts.IdempotencyKey == "" && opts.Guard == nil {
		return s.b.Publish(ctx, appID, drafts)
	}
	p, ok := s.b.(OptionsPublisher)
	if !ok {
		return nil, errors.Join(event.ErrInvalid, errors.New("this node does not support idempotencyKey or ifNoneMatchSince"))
	}
	return p.PublishWith(ctx, appID, drafts, opts)
}

func (s *Server) handleConsumerGet(w http.ResponseWriter, r *http.Request, c claims) {
	cb, ok := s.b.(ConsumerBackend)
	if !ok {
		writeError(w, newError(http.StatusNotFound, CodeNotFound, "this node keeps no consumer status"))
		return
	}
	req, ok := readRequest(w, r, s.cfg.MaxRequestBytes, jsonObject[ConsumerGetRequest])
	if !ok {
		return
	}
	if req.Name == "" || len(req.Name) > event.MaxConsumerNameLen {
		writeError(w, badRequest("name: want 1..%d bytes", event.MaxConsumerNameLen))
		return
	}
	st, found, e := cb.Consumer(r.Context(), c.AppID, req.Name)
	if e != nil {
		s.backendFailed(w, r, e)
		return
	}
	if !found {
		writeError(w, newError(http.StatusNotFound, CodeNotFound, "app %s has no consumer %q", c.AppID, truncate(req.Name, 64)))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleConsumerPut(w http.ResponseWriter, r *http.Request, c claims) {
	cb, ok := s.b.(ConsumerBackend)
	if !ok {
		writeError(w, newError(http.StatusNotFound, CodeNotFound, "this node keeps no consumer status"))
		return
	}
	st, ok := readRequest(w, r, s.cfg.MaxRequestBytes, jsonObject[event.ConsumerStatus])
	if !ok {
		return
	}
	if e := cb.PutConsumer(r.Context(), c.AppID, st); e != nil {
		s.backendFailed(w, r, e)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}
