package aql

import (
	"slices"
	"time"
)

// matchFunc is a compiled selection.
type matchFunc func(*Subject) bool

// Match reports whether the query's selection Where selects the event
// described by s. A Query without a selection (Where == nil) selects nothing.
//
// Match does not allocate and is safe for concurrent use. A query returned by
// Parse is compiled up front; one built by hand is compiled on its first
// Match, so its Where must not change after that.
func (q *Query) Match(s *Subject) bool {
	q.once.Do(q.compile)
	return q.match(s)
}

// compile turns Where into a tree of closures, with times converted to
// microseconds.
func (q *Query) compile() {
	q.match = compileExpr(q.Where)
}

func matchNothing(*Subject) bool { return false }
func matchAll(*Subject) bool     { return true }

func compileExpr(e Expr) matchFunc {
	switch x := deref(e).(type) {
	case Tag:
		name := x.Name
		return func(s *Subject) bool { return slices.Contains(s.Tags, name) }
	case And:
		switch len(x.Terms) {
		case 0:
			return matchAll
		case 1:
			return compileExpr(x.Terms[0])
		case 2:
			a, b := compileExpr(x.Terms[0]), compileExpr(x.Terms[1])
			return func(s *Subject) bool { return a(s) && b(s) }
		}
		fs := compileTerms(x.Terms)
		return func(s *Subject) bool {
			for _, f := range fs {
				if !f(s) {
					return false
				}
			}
			return true
		}
	case Or:
		switch len(x.Terms) {
		case 0:
			return matchNothing
		case 1:
			return compileExpr(x.Terms[0])
		case 2:
			a, b := compileExpr(x.Terms[0]), compileExpr(x.Terms[1])
			return func(s *Subject) bool { return a(s) || b(s) }
		}
		fs := compileTerms(x.Terms)
		return func(s *Subject) bool {
			for _, f := range fs {
				if f(s) {
					return true
				}
			}
			return false
		}
	case AllEvents:
		return matchAll
	case IsLocal:
		return func(s *Subject) bool { return s.Local }
	case AppID:
		id := x.ID
		return func(s *Subject) bool { return s.AppID == id }
	case TimeFrom:
		t := ceilMicro(x.T)
		return func(s *Subject) bool { return s.Timestamp >= t }
	case TimeTo:
		t := ceilMicro(x.T)
		return func(s *Subject) bool { return s.Timestamp < t }
	}
	return matchNothing // nil
}

func compileTerms(terms []Expr) []matchFunc {
	fs := make([]matchFunc, len(terms))
	for i, t := range terms {
		fs[i] = compileExpr(t)
	}
	return fs
}

// ceilMicro returns the smallest whole number of microseconds since the Unix
// epoch that is not before t. For an integer timestamp ts, ts >= t exactly
// when ts >= ceilMicro(t), and ts < t exactly when ts < ceilMicro(t).
func ceilMicro(t time.Time) int64 {
	us := t.UnixMicro() // rounds down: the nanosecond part is never negative
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}

// deref turns pointers to the concrete Expr types (which also satisfy Expr)
// into their values; a nil pointer becomes nil.
func deref(e Expr) Expr {
	switch x := e.(type) {
	case *Tag:
		if x != nil {
			return *x
		}
	case *And:
		if x != nil {
			return *x
		}
	case *Or:
		if x != nil {
			return *x
		}
	case *AllEvents:
		if x != nil {
			return *x
		}
	case *IsLocal:
		if x != nil {
			return *x
		}
	case *AppID:
		if x != nil {
			return *x
		}
	case *TimeFrom:
		if x != nil {
			return *x
		}
	case *TimeTo:
		if x != nil {
			return *x
		}
	default:
		return e
	}
	return nil
}
