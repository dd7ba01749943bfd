package expiry

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"

	"github.com/edgelog/edgelog/aql"
)

// DefaultStream is the name of stream 0, where events no route matches go.
// A Streams entry under this name sets stream 0's retention.
const DefaultStream = "default"

// Route sends the events its query selects into a named stream.
type Route struct {
	// From is an AQL query, e.g. "FROM 'telemetry'" or just "'telemetry'".
	From string `yaml:"from"`
	// Into names a declared stream (or DefaultStream).
	Into string `yaml:"into"`
}

var nameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]{0,63}$`)

// ValidName reports whether name may name a stream: a letter, then up to 63
// letters, digits, '_', '.' or '-'.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Config is a node's routing and retention settings.
type Config struct {
	// Routes are tried in order; the first match wins, else stream 0.
	Routes []Route
	// Streams declares the named streams with their retention.
	Streams map[string]Retention
}

// Names returns the declared stream names other than DefaultStream, sorted.
func (c Config) Names() []string {
	var out []string
	for n := range c.Streams {
		if n != DefaultStream {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Router picks the stream of a new event. It is immutable and safe for
// concurrent use.
type Router struct {
	rules []rule
}

type rule struct {
	q    *aql.Query
	into string
}

// NewRouter validates c and compiles its routes. Errors wrap ErrInvalid
// and name the setting: routes[i].from, routes[i].into or streams.<name>.
func NewRouter(c Config) (*Router, error) {
	for _, name := range slices.Sorted(maps.Keys(c.Streams)) {
		if !ValidName(name) {
			return nil, fmt.Errorf("streams.%s: %w: a stream name is a letter followed by up to 63 letters, digits, '_', '.' or '-'", name, ErrInvalid)
		}
		if err := c.Streams[name].Validate(); err != nil {
			return nil, fmt.Errorf("streams.%s.%w", name, err)
		}
	}
	r := &Router{}
	for i, rt := range c.Routes {
		if rt.From == "" {
			return nil, fmt.Errorf("routes[%d].from: %w: empty query", i, ErrInvalid)
		}
		src := rt.From
		q, err := aql.Parse(src)
		if err != nil {
			// Accept a bare selection, "'telemetry' & 'x'", as FROM <it>.
			if q2, err2 := aql.Parse("FROM " + src); err2 == nil {
				q, err = q2, nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("routes[%d].from: %w: %v", i, ErrInvalid, err)
		}
		if rt.Into == "" {
			return nil, fmt.Errorf("routes[%d].into: %w: missing stream name", i, ErrInvalid)
		}
		if _, ok := c.Streams[rt.Into]; !ok && rt.Into != DefaultStream {
			return nil, fmt.Errorf("routes[%d].into: %w: stream %q is not declared under streams", i, ErrInvalid, rt.Into)
		}
		r.rules = append(r.rules, rule{q: q, into: rt.Into})
	}
	return r, nil
}

// Route returns the stream name for an event: the Into of the first route
// whose query selects s, or DefaultStream.
func (r *Router) Route(s *aql.Subject) string {
	if r == nil {
		return DefaultStream
	}
	for _, ru := range r.rules {
		if ru.q.Match(s) {
			return ru.into
		}
	}
	return DefaultStream
}

// Empty reports whether r has no routes (everything goes to stream 0).
func (r *Router) Empty() bool { return r == nil || len(r.rules) == 0 }
