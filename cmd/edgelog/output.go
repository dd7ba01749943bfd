package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/api/client"
)

// linePrinter prints the lines of a query or subscription.
type linePrinter struct {
	out       *bufio.Writer
	stderr    io.Writer
	human     bool
	live      bool // a subscription: flush after every line
	events    int
	width     int   // of the stream column, once the header is printed
	diagError error // a diagnostic of severity error
}

func (a *app) newLinePrinter(o *clientOpts, live bool) *linePrinter {
	return &linePrinter{
		out:    bufio.NewWriterSize(a.stdout, 64<<10),
		stderr: a.stderr,
		human:  o.human(a.stdout),
		live:   live,
	}
}

// print writes the lines of seq: in NDJSON mode each line as the API sent it,
// in human mode events as aligned columns. Diagnostics and, in human mode,
// offsets markers go to stderr; lines of unknown types are passed through in
// NDJSON mode and skipped in human mode. It returns the error that ended seq.
func (p *linePrinter) print(seq iter.Seq2[client.Line, error]) (err error) {
	defer func() {
		if ferr := p.out.Flush(); ferr != nil && err == nil {
			err = fmt.Errorf("writing output: %w", ferr)
		}
	}()
	for l, err := range seq {
		if err != nil {
			return err
		}
		if err := p.line(l); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
		if p.live {
			if err := p.out.Flush(); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
		}
	}
	return nil
}

func (p *linePrinter) line(l client.Line) error {
	if l.Type == api.LineDiagnostic {
		if err := p.out.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(p.stderr, "edgelog: diagnostic: %s: %s\n", l.Severity, l.Message)
		if l.Severity == api.SeverityError {
			p.diagError = errors.New(l.Message)
		}
		return nil
	}
	if !p.human {
		if _, err := p.out.Write(l.Raw); err != nil {
			return err
		}
		return p.out.WriteByte('\n')
	}
	switch l.Type {
	case api.LineEvent:
		p.events++
		e := l.Event
		if p.width == 0 {
			p.width = max(len(e.Stream), len("STREAM"))
			fmt.Fprintf(p.out, "%8s  %-*s  %6s  %-23s  %s  %s\n", "LAMPORT", p.width, "STREAM", "OFFSET", "TIME", "TAGS", "PAYLOAD")
		}
		_, err := fmt.Fprintf(p.out, "%8d  %-*s  %6d  %-23s  %s  %s\n", e.Lamport, p.width, e.Stream, e.Offset,
			formatTime(e.Timestamp), formatTags(e.Tags), compactJSON(e.Payload))
		return err
	case api.LineOffsets:
		if err := p.out.Flush(); err != nil {
			return err
		}
		offs, _ := json.Marshal(l.Offsets)
		if p.live {
			fmt.Fprintf(p.stderr, "edgelog: caught up (%d events) at offsets %s; waiting for new events\n", p.events, offs)
		} else {
			fmt.Fprintf(p.stderr, "edgelog: %d events, up to offsets %s\n", p.events, offs)
		}
	}
	return nil
}

// result is the outcome once the lines are printed: an error if the node
// reported one in a diagnostic (already printed).
func (p *linePrinter) result() error {
	if p.diagError != nil {
		return &silentError{err: p.diagError}
	}
	return nil
}

// formatTime renders a timestamp in microseconds since the epoch in local time.
func formatTime(us int64) string {
	return time.UnixMicro(us).Local().Format("2006-01-02 15:04:05.000")
}

func formatTags(tags []string) string {
	if len(tags) == 0 {
		return "-"
	}
	return strings.Join(tags, ",")
}

func compactJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return string(raw)
	}
	return buf.String()
}
