package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/api/client"
	"github.com/edgelog/edgelog/event"
)

const defaultAppID = "com.example.edgelog-cli"

// Batching of `events publish` from stdin.
const (
	publishBatchEvents = 1000
	publishBatchBytes  = 1 << 20
)

// clientOpts are the flags shared by the commands talking to a node.
type clientOpts struct {
	api   string
	appID string
	json  bool
}

// addClientFlags adds --api, --app-id and --json to a command group.
func (a *app) addClientFlags(cmd *cobra.Command, o *clientOpts) {
	def := defaultAPIURL
	if v, ok := a.env(envAPI); ok {
		def = v
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.api, "api", def, "URL of the node's API ("+envAPI+" sets the default)")
	pf.StringVar(&o.appID, "app-id", defaultAppID, "app id to authenticate as")
	pf.BoolVar(&o.json, "json", false, "print NDJSON, the API's own lines (the default when stdout is not a terminal)")
}

func (o *clientOpts) client() (*client.Client, error) {
	c, err := client.New(o.api, client.Manifest{AppID: o.appID, DisplayName: "edgelog CLI", Version: version})
	if err != nil {
		return nil, &usageError{err: fmt.Errorf("--api: %w", err)}
	}
	return c, nil
}

// human reports whether to print for people rather than NDJSON.
func (o *clientOpts) human(w io.Writer) bool { return !o.json && isTerminal(w) }

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// callError adds a hint to errors reaching the node.
func (o *clientOpts) callError(what string, err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: cannot reach the node at %s (is 'edgelog run' running?): %w", what, o.api, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (a *app) eventsCmd() *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Publish, query and subscribe to events of a running node",
		Args:  groupArgs,
		RunE:  groupRun,
	}
	a.addClientFlags(cmd, o)
	cmd.AddCommand(a.offsetsCmd(o), a.publishCmd(o), a.queryCmd(o), a.subscribeCmd(o))
	return cmd
}

func (a *app) nodeCmd() *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Show a running node's ID and state",
		Args:  groupArgs,
		RunE:  groupRun,
	}
	a.addClientFlags(cmd, o)
	cmd.AddCommand(&cobra.Command{
		Use:   "id",
		Short: "Print the node's ID",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			id, err := c.NodeID(cmd.Context())
			if err != nil {
				return o.callError("node id", err)
			}
			_, err = fmt.Fprintln(a.stdout, id)
			return err
		},
	}, &cobra.Command{
		Use:   "info",
		Short: "Print the node's version, uptime, connected nodes and consumers",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			info, err := c.Info(cmd.Context())
			if err != nil {
				return o.callError("node info", err)
			}
			if o.human(a.stdout) {
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "version\t%s\n", info.Version)
				fmt.Fprintf(tw, "uptime\t%s\n", info.Uptime.Round(time.Second))
				fmt.Fprintf(tw, "connected nodes\t%d\n", info.ConnectedNodes)
				writePeers(tw, info.Peers)
				writeConsumers(tw, info.Consumers)
				writeStreamStats(tw, info.Streams)
				return tw.Flush()
			}
			up := max(info.Uptime, 0)
			return writeJSONLine(a.stdout, api.NodeInfoResponse{
				ConnectedNodes: info.ConnectedNodes,
				Peers:          append([]event.PeerInfo{}, info.Peers...),
				Uptime:         api.Uptime{Secs: uint64(up / time.Second), Nanos: uint32(up % time.Second)},
				Version:        info.Version,
				Consumers:      info.Consumers,
				Streams:        info.Streams,
			})
		},
	})
	return cmd
}

// writePeers lists the node's peers: one line each with its state and
// lag, then one line per address.
func writePeers(w io.Writer, ps []event.PeerInfo) {
	fmt.Fprintf(w, "peers\t%d\n", len(ps))
	for _, p := range ps {
		state := "disconnected"
		if p.Connected {
			state = "connected"
		}
		if p.Bootstrap {
			state += ", bootstrap"
		}
		lag := "lag unknown (no announce yet)"
		if p.Announced {
			lag = fmt.Sprintf("lag %d (we lack), behind %d (it lacks)", p.Lag, p.Behind)
		}
		if p.Score < 0 {
			lag += fmt.Sprintf(", gossip score %.0f", p.Score)
		}
		fmt.Fprintf(w, "  %s\t%s, %s\n", p.NodeID, state, lag)
		for _, a := range p.Addrs {
			fmt.Fprintf(w, "    address\t%s\n", a)
		}
	}
}

// writeConsumers lists durable consumers: one line each, then one line per
// blocked stream.
func writeConsumers(w io.Writer, cs []event.ConsumerStatus) {
	fmt.Fprintf(w, "consumers\t%d\n", len(cs))
	for _, c := range cs {
		state := "stopped"
		if c.Running {
			state = "running"
		}
		var handled uint64
		for _, off := range c.Checkpoint {
			handled += off + 1
		}
		fmt.Fprintf(w, "  %s %s\t%s, %d stream(s), %d event(s) handled, %d blocked, updated %s\n",
			c.AppID, c.Name, state, len(c.Checkpoint), handled, len(c.Blocked), c.Updated.Format(time.RFC3339))
		for _, b := range c.Blocked {
			fmt.Fprintf(w, "    blocked %s\tat offset %d after %d attempt(s): %s\n", b.Stream, b.Event.Offset, b.Attempts, b.Error)
		}
	}
}

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding output: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func (a *app) offsetsCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "offsets",
		Short: "Print the offsets the node holds per stream, and what it still has to replicate",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			offs, err := c.Offsets(cmd.Context())
			if err != nil {
				return o.callError("offsets", err)
			}
			if offs.Present == nil {
				offs.Present = event.OffsetMap{}
			}
			if offs.ToReplicate == nil {
				offs.ToReplicate = map[event.StreamID]uint64{}
			}
			if !o.human(a.stdout) {
				return writeJSONLine(a.stdout, api.OffsetsResponse{Present: offs.Present, ToReplicate: offs.ToReplicate, Streams: offs.Streams})
			}
			streams := make([]event.StreamID, 0, len(offs.Present))
			for s := range offs.Present {
				streams = append(streams, s)
			}
			for s := range offs.ToReplicate {
				if _, ok := offs.Present[s]; !ok {
					streams = append(streams, s)
				}
			}
			if len(streams) == 0 {
				_, err := fmt.Fprintln(a.stdout, "no events yet")
				return err
			}
			slices.Sort(streams)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STREAM\tPRESENT\tTO REPLICATE\tFLOOR\tCOUNT\tBYTES")
			for _, s := range streams {
				present := "-"
				if v, ok := offs.Present[s]; ok {
					present = fmt.Sprint(v)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", s, present, offs.ToReplicate[s], streamStatsCols(offs.Streams, s))
			}
			return tw.Flush()
		},
	}
}

// boundsFlag is an OffsetMap given as JSON on the command line.
type boundsFlag struct {
	m   event.OffsetMap
	set bool
}

func (b *boundsFlag) String() string {
	if !b.set {
		return ""
	}
	out, _ := json.Marshal(b.m)
	return string(out)
}

func (b *boundsFlag) Set(s string) error {
	var m event.OffsetMap
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf(`want a JSON object of stream IDs to offsets, like {"<nodeId>-0": 41}: %w`, err)
	}
	if m == nil {
		m = event.OffsetMap{}
	}
	for s := range m {
		if !s.Valid() {
			return fmt.Errorf("invalid stream id %q: want <nodeId>-<n>", s)
		}
	}
	b.m, b.set = m, true
	return nil
}

func (b *boundsFlag) Type() string { return "JSON" }

const defaultQuery = "FROM allEvents"

func queryArg(args []string) string {
	if len(args) == 0 || strings.TrimSpace(args[0]) == "" {
		return defaultQuery
	}
	return args[0]
}

func (a *app) queryCmd(o *clientOpts) *cobra.Command {
	var (
		lower, upper boundsFlag
		order        string
	)
	cmd := &cobra.Command{
		Use:   "query [--lower JSON] [--upper JSON] [--order asc|desc|stream-asc] [QUERY]",
		Short: "Print the events a query selects",
		Long: `Print the events QUERY (AQL; default "` + defaultQuery + `") selects between the
bounds: --lower is exclusive (a stream missing from it is read from its start),
--upper inclusive (without it: what the node holds when the query starts).

On a terminal each event is a line "lamport stream offset time tags payload";
with --json or when stdout is not a terminal the output is the API's NDJSON:
{"type":"event",...} lines, then a final {"type":"offsets","offsets":{...}}
line, which can serve as --lower of the next query. Diagnostics go to stderr.`,
		Example: `  edgelog events query "FROM 'machine:7' & 'temperature'"
  edgelog events query --order desc --json 'FROM allEvents' | head -n 10`,
		Args: argsUsage(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch order {
			case "asc", "desc", "stream-asc":
			default:
				return usagef("--order %q: want asc, desc or stream-asc", order)
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			req := client.QueryRequest{Query: queryArg(args), Order: order}
			if lower.set {
				req.LowerBound = lower.m
			}
			if upper.set {
				req.UpperBound = upper.m
			}
			pr := a.newLinePrinter(o, false)
			err = pr.print(c.Query(cmd.Context(), req))
			if err != nil {
				return o.callError("query", err)
			}
			return pr.result()
		},
	}
	cmd.Flags().Var(&lower, "lower", `exclusive lower bound: JSON {"<stream>": offset, ...}`)
	cmd.Flags().Var(&upper, "upper", `inclusive upper bound: JSON {"<stream>": offset, ...}`)
	cmd.Flags().StringVar(&order, "order", "asc", "order: asc, desc (by lamport, stream, offset) or stream-asc")
	return cmd
}

func (a *app) subscribeCmd(o *clientOpts) *cobra.Command {
	var lower boundsFlag
	cmd := &cobra.Command{
		Use:   "subscribe [--lower JSON] [QUERY]",
		Short: "Print the events a query selects, then new ones as they arrive, until Ctrl-C",
		Long: `Print the events QUERY (AQL; default "` + defaultQuery + `") selects above --lower
(exclusive; a stream missing from it is read from its start), then a marker, then
new events as they arrive, until interrupted (Ctrl-C).

On a terminal each event is a line "lamport stream offset time tags payload"
and the marker goes to stderr; with --json or when stdout is not a terminal the
output is the API's NDJSON: {"type":"event",...} lines, one
{"type":"offsets","offsets":{...}} line once the backlog is delivered, then
live events. Diagnostics go to stderr.`,
		Example: `  edgelog events subscribe "FROM 'temperature'"`,
		Args:    argsUsage(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			req := client.SubscribeRequest{Query: queryArg(args)}
			if lower.set {
				req.LowerBound = lower.m
			}
			ctx := cmd.Context()
			pr := a.newLinePrinter(o, true)
			err = pr.print(c.Subscribe(ctx, req))
			if err != nil {
				if ctx.Err() != nil { // interrupted: the normal end
					return pr.result()
				}
				return o.callError("subscribe", err)
			}
			return pr.result()
		},
	}
	cmd.Flags().Var(&lower, "lower", `exclusive lower bound: JSON {"<stream>": offset, ...}`)
	return cmd
}
