package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
)

// maxSessionLen bounds the session name of subscribe_monotonic.
const maxSessionLen = 256

// readBody reads the request body, at most limit bytes, within the body
// timeout (see deadlineBody).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *Error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, newError(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "request body exceeds %d bytes", mbe.Limit)
		}
		if db, ok := r.Body.(*deadlineBody); ok && errors.Is(err, os.ErrDeadlineExceeded) {
			w.Header().Set("Connection", "close")
			return nil, newError(http.StatusRequestTimeout, CodeRequestTimeout, "request body did not arrive within %v", db.timeout)
		}
		return nil, badRequest("reading request body: %v", err)
	}
	return body, nil
}

// deadlineBody bounds the time a request body takes to arrive: its first
// Read sets the connection's read deadline timeout ahead, and the end of
// the body (or any error) clears it, so a streamed answer that follows is
// not cut by it. Without it, a client could hold a connection open by
// sending its body a byte at a time (net/http bounds only the headers).
type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	timeout  time.Duration
	started  bool
	finished bool
}

// Read implements io.Reader.
func (b *deadlineBody) Read(p []byte) (int, error) {
	if !b.started {
		b.started = true
		// Not supported only outside a real connection (tests' recorders).
		_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.finished {
		b.finished = true
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	}
	return n, err
}

// readRequest reads a request body of at most limit bytes and decodes it;
// if either fails it answers the error and reports false.
func readRequest[T any](w http.ResponseWriter, r *http.Request, limit int64, decode func([]byte) (T, *Error)) (T, bool) {
	body, err := readBody(w, r, limit)
	if err == nil {
		var v T
		if v, err = decode(body); err == nil {
			return v, true
		}
	}
	writeError(w, err)
	var zero T
	return zero, false
}

// jsonObject decodes body into a T with decodeJSON.
func jsonObject[T any](body []byte) (T, *Error) {
	var v T
	err := decodeJSON(body, &v)
	return v, err
}

// decodeJSON decodes one JSON object from body into v. Unknown fields are
// accepted (clients may send more than this node knows); wrong types,
// malformed JSON and trailing data are not.
func decodeJSON(body []byte, v any) *Error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("malformed JSON: trailing data after the request object")
	}
	return nil
}

func jsonError(err error) *Error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return badRequest("request body must be a JSON object, got %s", te.Value)
		}
		return badRequest("field %s: want %s, got %s", te.Field, jsonTypeName(te.Type.String()), te.Value)
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return badRequest("malformed JSON at byte %d: %v", se.Offset, err)
	}
	if errors.Is(err, io.EOF) {
		return badRequest("malformed JSON: empty request body")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return badRequest("malformed JSON: unexpected end of request body")
	}
	return badRequest("malformed JSON: %v", err)
}

// jsonTypeName describes a Go type by the JSON it accepts.
func jsonTypeName(goType string) string {
	switch {
	case goType == "string" || goType == "event.StreamID":
		return "string"
	case strings.HasPrefix(goType, "uint"):
		return "non-negative integer"
	case strings.HasPrefix(goType, "int"):
		return "integer"
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case strings.HasPrefix(goType, "map[") || goType == "event.OffsetMap":
		return "object"
	case goType == "bool":
		return "boolean"
	}
	return "object"
}

// decodePublish decodes and checks a publish body into drafts.
func decodePublish(body []byte) ([]event.Draft, *Error) {
	drafts, _, err := decodePublishRequest(body)
	return drafts, err
}

// decodePublishRequest decodes and checks a publish body into drafts and
// options.
func decodePublishRequest(body []byte) ([]event.Draft, event.PublishOptions, *Error) {
	var req PublishRequest
	if err := decodeJSON(body, &req); err != nil {
		return nil, event.PublishOptions{}, err
	}
	opts, err := publishOptions(&req)
	if err != nil {
		return nil, event.PublishOptions{}, err
	}
	drafts, err := publishDrafts(&req)
	return drafts, opts, err
}

// publishDrafts checks the events of a publish body.
func publishDrafts(req *PublishRequest) ([]event.Draft, *Error) {
	if req.Data == nil {
		return nil, badRequest("missing field data")
	}
	drafts := make([]event.Draft, len(req.Data))
	for i, e := range req.Data {
		if e.Tags == nil {
			return nil, badRequest("data[%d]: missing field tags", i)
		}
		for j, t := range e.Tags {
			if t == "" {
				return nil, badRequest("data[%d].tags[%d]: tags must be non-empty strings", i, j)
			}
		}
		if len(e.Payload) == 0 {
			return nil, badRequest("data[%d]: missing field payload", i)
		}
		payload, err := event.PayloadFromJSON(e.Payload)
		if err != nil {
			return nil, badRequest("data[%d].payload: %v", i, err)
		}
		drafts[i] = event.Draft{Tags: e.Tags, Payload: payload}
	}
	return drafts, nil
}

// checkBound checks that every key of a bound is a stream id. (Values are
// uint64, so decoding already refused anything but non-negative integers.)
func checkBound(name string, m event.OffsetMap) *Error {
	for s := range m {
		if !s.Valid() {
			return badRequest("%s: invalid stream id %q: want <nodeId>-<n>", name, truncate(string(s), event.MaxStreamIDLen))
		}
	}
	return nil
}

// parseQuery parses an AQL query, mapping syntax errors to ERR_BAD_QUERY
// with their position.
func parseQuery(src string) (*aql.Query, *Error) {
	if strings.TrimSpace(src) == "" {
		return nil, newError(http.StatusBadRequest, CodeBadQuery, "missing or empty field query")
	}
	q, err := aql.Parse(src)
	if err != nil {
		if se, ok := errors.AsType[*aql.SyntaxError](err); ok {
			return nil, newError(http.StatusBadRequest, CodeBadQuery,
				"query syntax error at line %d, column %d (offset %d): %s", se.Line, se.Col, se.Pos, se.Msg)
		}
		return nil, newError(http.StatusBadRequest, CodeBadQuery, "bad query: %v", err)
	}
	return q, nil
}

// decodeQuery decodes and checks a query body.
func decodeQuery(body []byte) (event.QueryRequest, *Error) {
	var req QueryRequest
	if err := decodeJSON(body, &req); err != nil {
		return event.QueryRequest{}, err
	}
	if err := checkBound("lowerBound", req.LowerBound); err != nil {
		return event.QueryRequest{}, err
	}
	if err := checkBound("upperBound", req.UpperBound); err != nil {
		return event.QueryRequest{}, err
	}
	order, ok := event.ParseOrder(req.Order)
	if !ok {
		return event.QueryRequest{}, badRequest("invalid order %q: want asc, desc or stream-asc", truncate(req.Order, 32))
	}
	q, err := parseQuery(req.Query)
	if err != nil {
		return event.QueryRequest{}, err
	}
	return event.QueryRequest{Lower: req.LowerBound, Upper: req.UpperBound, Query: q, Order: order}, nil
}

// decodeSubscribe decodes and checks a subscribe body.
func decodeSubscribe(body []byte) (event.SubscribeRequest, *Error) {
	var req SubscribeRequest
	if err := decodeJSON(body, &req); err != nil {
		return event.SubscribeRequest{}, err
	}
	if err := checkBound("lowerBound", req.LowerBound); err != nil {
		return event.SubscribeRequest{}, err
	}
	q, err := parseQuery(req.Query)
	if err != nil {
		return event.SubscribeRequest{}, err
	}
	return event.SubscribeRequest{Lower: req.LowerBound, Query: q}, nil
}

// decodeMonotonic decodes and checks a subscribe_monotonic body. A missing
// lowerBound reads every stream from its start.
func decodeMonotonic(body []byte) (event.MonotonicRequest, *Error) {
	var req SubscribeMonotonicRequest
	if err := decodeJSON(body, &req); err != nil {
		return event.MonotonicRequest{}, err
	}
	if req.Session == "" {
		return event.MonotonicRequest{}, badRequest("missing or empty field session")
	}
	if !validText(req.Session, maxSessionLen) {
		return event.MonotonicRequest{}, badRequest("invalid session: want at most %d bytes of printable UTF-8", maxSessionLen)
	}
	if err := checkBound("lowerBound", req.LowerBound); err != nil {
		return event.MonotonicRequest{}, err
	}
	q, err := parseQuery(req.Query)
	if err != nil {
		return event.MonotonicRequest{}, err
	}
	return event.MonotonicRequest{Session: req.Session, Lower: req.LowerBound, Query: q}, nil
}
