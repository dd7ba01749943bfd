package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/api/client"
)

func (a *app) publishCmd(o *clientOpts) *cobra.Command {
	var tags []string
	var key string
	cmd := &cobra.Command{
		Use:   "publish [--tag TAG]... [PAYLOAD_JSON]",
		Short: "Publish events",
		Long: `Publish one event with the payload PAYLOAD_JSON, or, without it, one event per
line of stdin (each line one JSON value; empty lines are skipped), published in
batches. Every event gets the tags given with --tag.

Prints for each event where it was stored: its lamport, stream, offset and
timestamp (NDJSON {"lamport","offset","stream","timestamp"} with --json or
when stdout is not a terminal). A line that is not valid JSON stops the
command; the events of the lines before it are published.

With --idempotency-key KEY (only with PAYLOAD_JSON), the node publishes the
event once per KEY and app: running the command again with the same KEY and
payload prints the first answer and stores nothing (a safe retry after a
timeout); the same KEY with another payload or tags is refused. The node
keeps keys for 7 days.`,
		Example: `  edgelog events publish --tag machine:7 --tag temperature '{"value": 42.5}'
  printf '%s\n' '{"n":1}' '{"n":2}' | edgelog events publish --tag counter
  edgelog events publish --idempotency-key order-17-done --tag order:17 '{"done": true}'`,
		Args: argsUsage(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, t := range tags {
				if t == "" {
					return usagef("--tag: tags must not be empty")
				}
			}
			if cmd.Flags().Changed("idempotency-key") && (key == "" || len(args) == 0) {
				return usagef("--idempotency-key: needs a non-empty KEY and a PAYLOAD_JSON argument (not events from stdin)")
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			p := &publisher{o: o, c: c, tags: tags, key: key, out: a.stdout, human: o.human(a.stdout)}
			if len(args) == 1 {
				payload := []byte(args[0])
				if err := checkJSON(payload); err != nil {
					return usagef("PAYLOAD_JSON: %v", err)
				}
				return p.publish(cmd.Context(), [][]byte{payload})
			}
			if isTerminal(a.stdin) {
				fmt.Fprintln(a.stderr, "edgelog: reading events from stdin, one JSON value per line; end with Ctrl-D")
			}
			return p.fromReader(cmd.Context(), a.stdin)
		},
	}
	cmd.Flags().StringArrayVarP(&tags, "tag", "t", nil, "tag of the events (repeatable)")
	cmd.Flags().StringVar(&key, "idempotency-key", "", "publish at most once per KEY: a retry with the same KEY prints the first answer")
	return cmd
}

// checkJSON checks that b is exactly one JSON value.
func checkJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty; want a JSON value")
		}
		return fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("not valid JSON: more than one value")
	}
	return nil
}

// publisher publishes payloads and prints where they were stored.
type publisher struct {
	o         *clientOpts
	c         *client.Client
	tags      []string
	key       string // idempotency key; "" for none
	out       io.Writer
	human     bool
	published int
	width     int // of the stream column, once the header is printed
}

func (p *publisher) publish(ctx context.Context, payloads [][]byte) error {
	evs := make([]client.PublishEvent, len(payloads))
	for i, pl := range payloads {
		tags := p.tags
		if tags == nil {
			tags = []string{}
		}
		evs[i] = client.PublishEvent{Tags: tags, Payload: json.RawMessage(pl)}
	}
	metas, err := p.c.PublishWith(ctx, api.PublishRequest{Data: evs, IdempotencyKey: p.key})
	if err != nil {
		if p.published > 0 {
			return p.o.callError(fmt.Sprintf("publish (after %d events were published)", p.published), err)
		}
		return p.o.callError("publish", err)
	}
	p.published += len(metas)
	if !p.human {
		for _, m := range metas {
			if err := writeJSONLine(p.out, m); err != nil {
				return err
			}
		}
		return nil
	}
	var buf bytes.Buffer
	for _, m := range metas {
		if p.width == 0 {
			p.width = max(len(m.Stream), len("STREAM"))
			fmt.Fprintf(&buf, "%8s  %-*s  %6s  %s\n", "LAMPORT", p.width, "STREAM", "OFFSET", "TIME")
		}
		fmt.Fprintf(&buf, "%8d  %-*s  %6d  %s\n", m.Lamport, p.width, m.Stream, m.Offset, formatTime(m.Timestamp))
	}
	_, err = p.out.Write(buf.Bytes())
	return err
}

// inputLine is one line of stdin, or the error that ended reading.
type inputLine struct {
	no   int
	data []byte
	err  error
}

// fromReader publishes one event per line of r. Lines that are available
// together go into one request (up to a batch size); a lone line is sent at
// once, so that a slow producer's events are not delayed.
func (p *publisher) fromReader(ctx context.Context, r io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan inputLine, publishBatchEvents)
	go readLines(ctx, r, lines)

	var (
		batch [][]byte
		size  int
		stop  error
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := p.publish(ctx, batch)
		batch, size = batch[:0], 0
		return err
	}
	for stop == nil {
		var (
			l  inputLine
			ok bool
		)
		if len(batch) > 0 && len(batch) < publishBatchEvents && size < publishBatchBytes {
			select {
			case l, ok = <-lines:
			default:
				if err := flush(); err != nil {
					return err
				}
				continue
			}
		} else if len(batch) > 0 {
			if err := flush(); err != nil {
				return err
			}
			continue
		} else {
			select {
			case l, ok = <-lines:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		switch {
		case !ok:
			return flush()
		case l.err != nil:
			stop = l.err
		default:
			if err := checkJSON(l.data); err != nil {
				stop = fmt.Errorf("stdin line %d: %w", l.no, err)
				break
			}
			batch = append(batch, l.data)
			size += len(l.data)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if p.published > 0 {
		return fmt.Errorf("%w (the %d events before it were published)", stop, p.published)
	}
	return stop
}

// readLines sends the non-empty lines of r to out and closes it.
func readLines(ctx context.Context, r io.Reader, out chan<- inputLine) {
	defer close(out)
	br := bufio.NewReaderSize(r, 64<<10)
	for no := 1; ; no++ {
		b, err := br.ReadBytes('\n')
		if t := bytes.TrimSpace(b); len(t) > 0 {
			select {
			case out <- inputLine{no: no, data: t}:
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				select {
				case out <- inputLine{no: no, err: fmt.Errorf("reading stdin: %w", err)}:
				case <-ctx.Done():
				}
			}
			return
		}
	}
}
