package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// Routing and retention settings (file only):
//
//	streams:
//	  telemetry: {maxEvents: 1000, maxAge: 7d, maxSize: 50MB}
//	routes:
//	  - {from: "'telemetry'", into: telemetry}

// fileStream is one entry of streams: its retention.
type fileStream struct {
	MaxEvents yInt     `yaml:"maxEvents"`
	MaxSize   yLiteral `yaml:"maxSize"`
	MaxAge    yLiteral `yaml:"maxAge"`
}

// fileRoute is one entry of routes.
type fileRoute struct {
	From yString `yaml:"from"`
	Into yString `yaml:"into"`
}

// yStreams keeps the streams mapping in file order with positions.
type yStreams struct {
	names []string
	pos   []yPos
	specs []fileStream
	yPos
}

// UnmarshalYAML accepts a mapping of stream names to retention rules.
func (y *yStreams) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	m, ok := n.(*ast.MappingNode)
	if !ok {
		return wrongKind(n, "a mapping of stream names to retention rules")
	}
	y.yPos = posOf(n)
	for _, kv := range m.Values {
		var fs fileStream
		if !isNull(kv.Value) {
			if _, ok := kv.Value.(*ast.MappingNode); !ok {
				return wrongKind(kv.Value, "a retention rule: maxEvents, maxSize and/or maxAge")
			}
			if err := decodeNode(kv.Value, &fs); err != nil {
				return err
			}
		}
		y.names = append(y.names, kv.Key.String())
		y.pos = append(y.pos, posOf(kv.Key))
		y.specs = append(y.specs, fs)
	}
	return nil
}

// yRoutes is the routes list with its position.
type yRoutes struct {
	V []fileRoute
	yPos
}

// UnmarshalYAML accepts a list of {from, into}.
func (y *yRoutes) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		return wrongKind(n, "a list of routes {from: <tag query>, into: <stream>}")
	}
	y.yPos = posOf(n)
	for _, v := range seq.Values {
		if _, ok := v.(*ast.MappingNode); !ok {
			return wrongKind(v, "a route {from: <tag query>, into: <stream>}")
		}
		var fr fileRoute
		if err := decodeNode(v, &fr); err != nil {
			return err
		}
		y.V = append(y.V, fr)
	}
	return nil
}

// yLiteral is a scalar kept as text (a size or an age with its unit).
type yLiteral struct {
	V string
	yPos
}

// UnmarshalYAML accepts a string or an integer.
func (y *yLiteral) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	switch v := n.(type) {
	case *ast.StringNode:
		y.V = v.Value
	case *ast.IntegerNode:
		y.V = v.GetToken().Value
		if _, err := strconv.ParseInt(y.V, 10, 64); err != nil {
			return wrongKind(n, "a number with a unit")
		}
	default:
		return wrongKind(n, "a number with a unit")
	}
	y.yPos = posOf(n)
	return nil
}

// streams resolves the streams and routes of the file: every problem is
// recorded with the setting's name and position.
func (r *resolver) streams(fc *fileConfig) ([]expiry.Route, map[string]expiry.Retention) {
	out := map[string]expiry.Retention{}
	fs := fc.Streams
	for i, name := range fs.names {
		key := "streams." + name
		if !expiry.ValidName(name) {
			r.errs.add(r.fileOrigin(key, fs.pos[i]), "%q is not a stream name (a letter, then up to 63 letters, digits, '_', '.' or '-')", name)
			continue
		}
		sp := fs.specs[i]
		var spec expiry.Spec
		if sp.MaxEvents.set() {
			v := sp.MaxEvents.V
			spec.MaxEvents = &v
		}
		spec.MaxSize, spec.MaxAge = sp.MaxSize.V, sp.MaxAge.V
		rule, err := spec.Parse()
		if err != nil {
			// Name the field that failed, at its position.
			p, field := fs.pos[i], ""
			switch {
			case sp.MaxEvents.set() && (sp.MaxEvents.V <= 0):
				p, field = sp.MaxEvents.yPos, ".maxEvents"
			case sp.MaxSize.set() && errHasPrefix(err, "maxSize"):
				p, field = sp.MaxSize.yPos, ".maxSize"
			case sp.MaxAge.set() && errHasPrefix(err, "maxAge"):
				p, field = sp.MaxAge.yPos, ".maxAge"
			}
			msg := err.Error()
			if field != "" {
				msg = strings.TrimPrefix(msg, field[1:]+": ")
			}
			r.errs.add(r.fileOrigin(key+field, p), "%s", msg)
			continue
		}
		out[name] = rule
	}
	var routes []expiry.Route
	for i, fr := range fc.Routes.V {
		key := fmt.Sprintf("routes[%d]", i)
		switch {
		case !fr.From.set() || fr.From.V == "":
			r.errs.add(r.fileOrigin(key, fc.Routes.yPos), "a route needs from: a tag query such as \"'telemetry'\"")
			continue
		case !fr.Into.set() || fr.Into.V == "":
			r.errs.add(r.fileOrigin(key, fr.From.yPos), "a route needs into: the name of a stream declared under streams")
			continue
		}
		if _, err := aql.Parse(fr.From.V); err != nil {
			if _, err2 := aql.Parse("FROM " + fr.From.V); err2 != nil {
				if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(fr.From.V)), "FROM") {
					err = fmt.Errorf("%v (in \"FROM %s\")", err2, fr.From.V)
				}
				r.errs.add(r.fileOrigin(key+".from", fr.From.yPos), "%q is not a tag query: %v", fr.From.V, err)
				continue
			}
		}
		if _, ok := out[fr.Into.V]; !ok && fr.Into.V != expiry.DefaultStream {
			if !contains(fs.names, fr.Into.V) { // a declared stream with a bad rule is reported there
				r.errs.add(r.fileOrigin(key+".into", fr.Into.yPos), "stream %q is not declared under streams", fr.Into.V)
			}
			continue
		}
		routes = append(routes, expiry.Route{From: fr.From.V, Into: fr.Into.V})
	}
	if len(out) == 0 {
		out = nil
	}
	return routes, out
}

func errHasPrefix(err error, p string) bool {
	s := err.Error()
	return len(s) >= len(p) && s[:len(p)] == p
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// decodeNode decodes n into v as strictly as the whole file.
func decodeNode(n ast.Node, v any) error {
	return yaml.NodeToValue(n, v, yaml.Strict())
}

// streamStatsCols renders a stream's floor, count and bytes as table
// columns ("-" for a stream not held).
func streamStatsCols(m map[event.StreamID]event.StreamStats, s event.StreamID) string {
	st, ok := m[s]
	if !ok {
		return "-\t-\t-"
	}
	return fmt.Sprintf("%d\t%d\t%s", st.Floor, st.Count, expiry.FormatSizeApprox(st.Bytes))
}

// writeStreamStats lists each stream's floor, count, bytes and retention.
func writeStreamStats(w io.Writer, m map[event.StreamID]event.StreamStats) {
	fmt.Fprintf(w, "streams\t%d\n", len(m))
	ids := make([]event.StreamID, 0, len(m))
	for s := range m {
		ids = append(ids, s)
	}
	slices.Sort(ids)
	for _, s := range ids {
		st := m[s]
		rule := st.Retention
		if rule == "" {
			rule = "keep forever"
		}
		fmt.Fprintf(w, "  %s\tfloor %d, %d event(s), %s, %s\n", s, st.Floor, st.Count, expiry.FormatSizeApprox(st.Bytes), rule)
	}
}
