package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
)

// net/http answers some malformed requests itself, before any handler
// runs: a bad request line or header, a bad Content-Length, oversized
// headers, an unsupported HTTP version or transfer encoding, an Expect
// other than 100-continue. It writes those answers as plain text straight
// to the connection, each in one Write. jsonErrorListener's connections
// recognise exactly these writes and send the API's JSON error instead, so
// a client sees one error format whatever it got wrong.

// serverErrorHeaders follows the status line of every plain-text answer of
// net/http's connection loop; the API's own answers always carry a JSON
// or NDJSON content type, so they never match it.
const serverErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// jsonErrorListener wraps the connections it accepts in jsonErrorConn.
type jsonErrorListener struct{ net.Listener }

// Accept implements net.Listener.
func (l jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c}, nil
}

// jsonErrorConn rewrites net/http's own error answers (see above).
type jsonErrorConn struct{ net.Conn }

// Write implements net.Conn.
func (c *jsonErrorConn) Write(p []byte) (int, error) {
	if out, ok := rewriteServerError(p, maxHeaderBytes); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite half-closes the connection, as net/http does after refusing
// oversized headers, if the connection underneath can.
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// rewriteServerError returns the JSON answer for p if p is one of
// net/http's own error answers, and reports whether it was. maxHeader is
// the header limit, named in the 431 answer.
func rewriteServerError(p []byte, maxHeader int) ([]byte, bool) {
	const proto = "HTTP/1.1 "
	if len(p) < len(proto)+3 || !bytes.HasPrefix(p, []byte(proto)) {
		return nil, false
	}
	status, err := strconv.Atoi(string(p[len(proto) : len(proto)+3]))
	if err != nil || status < 400 || status > 599 {
		return nil, false
	}
	var e *Error
	switch _, body, canned := bytes.Cut(p, []byte(serverErrorHeaders)); {
	case status == http.StatusExpectationFailed:
		// Written through the response, without a body; the API itself
		// never answers 417.
		e = newError(status, CodeBadRequest, "unsupported Expect header: only 100-continue is understood")
	case !canned:
		return nil, false
	case status == http.StatusRequestHeaderFieldsTooLarge:
		e = newError(status, CodePayloadTooLarge, "request headers exceed %d bytes", maxHeader)
	case status == http.StatusNotImplemented:
		e = badRequest("unsupported Transfer-Encoding: send a body with Content-Length or chunked")
	case status == http.StatusHTTPVersionNotSupported:
		e = badRequest("unsupported HTTP version: use HTTP/1.1")
	default:
		// "400 Bad Request" alone, or with net/http's reason after ": ".
		msg := "malformed HTTP request"
		if _, reason, ok := bytes.Cut(body, []byte(": ")); ok {
			msg += ": " + string(reason)
		}
		e = newError(status, CodeBadRequest, "%s", msg)
	}
	js, err := json.Marshal(e)
	if err != nil {
		return nil, false
	}
	out := fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", e.Status, http.StatusText(e.Status), len(js))
	return append(out, js...), true
}
