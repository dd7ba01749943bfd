package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"sync"
	"time"

	"github.com/edgelog/edgelog/event"
)

type seq = iter.Seq2[event.Item, error]

type streamKind int

const (
	streamQuery streamKind = iota
	streamSubscribe
	streamMonotonic
)

const (
	// headerWait is how long a stream waits for its first item before it
	// commits to 200 and sends the headers. An error before then is answered
	// with a proper HTTP status.
	headerWait = 200 * time.Millisecond
	// minFlushInterval rate-limits flushes while items keep coming: when the
	// producer has nothing ready the buffered lines are flushed at once,
	// unless the previous flush is more recent than this, in which case the
	// flush is delayed by the remainder. A burst of a million lines therefore
	// costs a few hundred flushes, and a lone live event none of delay.
	minFlushInterval = 2 * time.Millisecond
	// streamBufferSize is the size of the write buffer; a full buffer is
	// written out regardless of flushes.
	streamBufferSize = 32 << 10
	// queueLen is how many encoded lines the producer may run ahead.
	queueLen = 128
)

// msg is what the producer hands the writer: an encoded line, a skipped
// event's warning, or the sequence's error.
type msg struct {
	line []byte
	warn error
	err  error
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getLine() []byte { return (*linePool.Get().(*[]byte))[:0] }

func putLine(b []byte) {
	if cap(b) <= 64<<10 {
		linePool.Put(&b)
	}
}

// stream answers with the NDJSON rendering of the sequence open returns.
//
// A producer goroutine ranges over the sequence and encodes each item while
// the Backend still owns it; this goroutine writes the lines to a buffer and
// flushes whenever the producer has nothing ready (see minFlushInterval).
// The Backend's context is the request's, so a client that goes away stops
// the work; subscriptions are also cancelled when Serve shuts down.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, kind streamKind, open func(context.Context) seq) {
	ctx, cancel := context.WithCancel(r.Context())
	shutdown, _ := r.Context().Value(shutdownKey{}).(context.Context)
	if shutdown != nil && kind != streamQuery {
		stop := context.AfterFunc(shutdown, cancel)
		defer stop()
	}
	msgs := make(chan msg, queueLen)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(msgs)
		defer func() {
			if v := recover(); v != nil {
				select {
				case msgs <- msg{err: fmt.Errorf("api: backend sequence panicked: %v", v)}:
				case <-ctx.Done():
				}
			}
		}()
		produce(ctx, open(ctx), kind == streamMonotonic, msgs)
	}()
	defer func() {
		cancel()
		<-done
	}()

	bw := bufio.NewWriterSize(w, streamBufferSize)
	rc := http.NewResponseController(w)
	headerSent := false
	commit := func() {
		h := w.Header()
		h.Set("Content-Type", ContentTypeNDJSON)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		headerSent = true
	}
	var lastFlush time.Time
	flush := func() bool {
		if err := bw.Flush(); err != nil {
			return false
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		lastFlush = time.Now()
		return true
	}
	// shuttingDown ends a subscription cut by Serve's shutdown with a
	// diagnostic, so the client can tell it from a network failure.
	shuttingDown := func() {
		if shutdown == nil || shutdown.Err() == nil || r.Context().Err() != nil {
			return
		}
		if !headerSent {
			commit()
		}
		_, _ = bw.Write(diagnosticLine(SeverityError, "node is shutting down"))
		flush()
	}

	timer := time.NewTimer(headerWait) // first the header wait, then pending flushes
	defer timer.Stop()
	timerC := timer.C
	for {
		var m msg
		var ok bool
		select {
		case m, ok = <-msgs:
		default:
			// The producer has nothing ready: flush, or plan to.
			if headerSent && timerC == nil && bw.Buffered() > 0 {
				if d := minFlushInterval - time.Since(lastFlush); d > 0 {
					timer.Reset(d)
					timerC = timer.C
				} else if !flush() {
					return
				}
			}
			select {
			case m, ok = <-msgs:
			case <-timerC:
				timerC = nil
				if !headerSent {
					commit()
				}
				if !flush() {
					return
				}
				continue
			case <-ctx.Done():
				shuttingDown()
				return
			}
		}
		switch {
		case !ok: // the sequence ended
			if ctx.Err() != nil {
				shuttingDown()
				return
			}
			if !headerSent {
				commit()
			}
			flush()
			return
		case m.err != nil:
			if ctx.Err() != nil {
				shuttingDown()
				return
			}
			apiErr, internal := backendError(m.err)
			if internal {
				s.log.Error("api: backend stream error", "path", r.URL.Path, "err", m.err)
			}
			if !headerSent {
				writeError(w, apiErr)
				return
			}
			_, _ = bw.Write(diagnosticLine(SeverityError, apiErr.Message))
			flush()
			return
		}
		if !headerSent {
			timer.Stop()
			timerC = nil
			commit()
		}
		if m.warn != nil {
			s.log.Warn("api: skipping event with unconvertible payload", "path", r.URL.Path, "err", m.warn)
			m.line = diagnosticLine(SeverityWarning, "skipped "+m.warn.Error())
		}
		_, err := bw.Write(m.line)
		putLine(m.line)
		if err != nil {
			return
		}
	}
}

// produce ranges over items, encoding each into a line for out, until the
// sequence ends, fails or ctx is cancelled.
func produce(ctx context.Context, items seq, monotonic bool, out chan<- msg) {
	send := func(m msg) bool {
		select {
		case out <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for it, err := range items {
		if err != nil {
			send(msg{err: err})
			return
		}
		var m msg
		switch it.Kind {
		case event.KindEvent:
			if it.Event == nil {
				continue
			}
			caughtUp := -1
			if monotonic {
				caughtUp = 0
				if it.CaughtUp {
					caughtUp = 1
				}
			}
			line, err := appendEventLine(getLine(), it.Event, caughtUp)
			if err != nil {
				putLine(line)
				m.warn = err
			} else {
				m.line = line
			}
		default:
			line, ok, err := appendItemLine(getLine(), it)
			switch {
			case err != nil:
				m.err = err
			case !ok:
				putLine(line)
				continue
			default:
				m.line = line
			}
		}
		if !send(m) || m.err != nil {
			return
		}
	}
}
