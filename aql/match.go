package aql

import (
	"slices"
	"strings"
	"time"
)

// Match reports whether the query selects the event described by s.
func (q *Query) Match(s *Subject) bool {
	q.once.Do(q.compile)
	return q.match(s)
}

// compile turns Where into a closure tree, times into microseconds.
func (q *Query) compile() {
	if q.Where == nil {
		q.match = func(*Subject) bool { return false }
		return
	}
	q.match = compileExpr(q.Where)
}

type matchFunc func(*Subject) bool

func compileExpr(e Expr) matchFunc {
	switch x := e.(type) {
	case Tag:
		name := x.Name
		return func(s *Subject) bool { return slices.Contains(s.Tags, name) }
	case And:
		fs := make([]matchFunc, len(x.Terms))
		for i, t := range x.Terms {
			fs[i] = compileExpr(t)
		}
		return func(s *Subject) bool {
			for _, f := range fs {
				if !f(s) {
					return false
				}
			}
			return true
		}
	case Or:
		fs := make([]matchFunc, len(x.Terms))
		for i, t := range x.Terms {
			fs[i] = compileExpr(t)
		}
		return func(s *Subject) bool {
			for _, f := range fs {
				if f(s) {
					return true
				}
			}
			return false
		}
	case AllEvents:
		return func(*Subject) bool { return true }
	case IsLocal:
		return func(s *Subject) bool { return s.Local }
	case AppID:
		id := x.ID
		return func(s *Subject) bool { return s.AppID == id }
	case TimeFrom:
		t := x.T.UnixMicro()
		return func(s *Subject) bool { return s.Timestamp >= t }
	case TimeTo:
		t := x.T.UnixMicro()
		return func(s *Subject) bool { return s.Timestamp < t }
	}
	return func(*Subject) bool { return false }
}

// String renders the query as canonical AQL.
func (q *Query) String() string {
	var b strings.Builder
	if len(q.Features) > 0 {
		b.WriteString("FEATURES(" + strings.Join(q.Features, " ") + ") ")
	}
	b.WriteString("FROM ")
	b.WriteString(ExprString(q.Where))
	return b.String()
}

// ExprString renders e as AQL.
func ExprString(e Expr) string {
	switch x := e.(type) {
	case Tag:
		return "'" + strings.ReplaceAll(x.Name, "'", "''") + "'"
	case And:
		parts := make([]string, len(x.Terms))
		for i, t := range x.Terms {
			parts[i] = ExprString(t)
			if _, ok := t.(Or); ok {
				parts[i] = "(" + parts[i] + ")"
			}
		}
		return strings.Join(parts, " & ")
	case Or:
		parts := make([]string, len(x.Terms))
		for i, t := range x.Terms {
			parts[i] = ExprString(t)
		}
		return strings.Join(parts, " | ")
	case AllEvents:
		return "allEvents"
	case IsLocal:
		return "isLocal"
	case AppID:
		return "appId('" + strings.ReplaceAll(x.ID, "'", "''") + "')"
	case TimeFrom:
		return "from(" + x.T.UTC().Format(time.RFC3339Nano) + ")"
	case TimeTo:
		return "to(" + x.T.UTC().Format(time.RFC3339Nano) + ")"
	}
	return "allEvents"
}
