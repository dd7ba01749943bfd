package aql

import (
	"fmt"
	"strings"
	"time"
)

// String renders the query as canonical AQL: the FEATURES clause if there
// are features, then FROM and the selection (see ExprString). Parsing the
// result gives back the same Features and Where.
func (q *Query) String() string {
	var b strings.Builder
	if len(q.Features) > 0 {
		b.WriteString("FEATURES(")
		b.WriteString(strings.Join(q.Features, " "))
		b.WriteString(") ")
	}
	b.WriteString("FROM ")
	writeExpr(&b, q.Where, false)
	return b.String()
}

// ExprString renders a selection as canonical AQL: tags in single quotes,
// " & " and " | " between terms, parentheses only where an Or stands inside
// an And, times in UTC as RFC 3339 with as many fractional digits as needed.
//
// For a tree as Parse builds it (no And directly inside an And nor Or inside
// an Or, no And or Or with fewer than two terms, non-empty valid UTF-8 tags,
// times in UTC) parsing the result gives back an equal tree. Other trees
// render to AQL with the same meaning: an empty And as allEvents, an empty
// Or, which selects nothing, as an empty time range. A nil Expr, which has no
// AQL form, renders as "<nil>" (and does not parse).
func ExprString(e Expr) string {
	var b strings.Builder
	writeExpr(&b, e, false)
	return b.String()
}

// noEvents is the AQL for an empty Or: a time range that holds no instant.
const noEvents = "from(1970-01-01T00:00:00Z) & to(1970-01-01T00:00:00Z)"

// writeExpr renders e; inAnd says it is a term of an And, so an Or must be
// parenthesized.
func writeExpr(b *strings.Builder, e Expr, inAnd bool) {
	switch x := deref(e).(type) {
	case Tag:
		writeQuoted(b, x.Name)
	case And:
		switch len(x.Terms) {
		case 0:
			b.WriteString("allEvents")
		case 1:
			writeExpr(b, x.Terms[0], inAnd)
		default:
			for i, t := range x.Terms {
				if i > 0 {
					b.WriteString(" & ")
				}
				writeExpr(b, t, true)
			}
		}
	case Or:
		switch len(x.Terms) {
		case 0:
			b.WriteString(noEvents)
		case 1:
			writeExpr(b, x.Terms[0], inAnd)
		default:
			if inAnd {
				b.WriteByte('(')
			}
			for i, t := range x.Terms {
				if i > 0 {
					b.WriteString(" | ")
				}
				writeExpr(b, t, false)
			}
			if inAnd {
				b.WriteByte(')')
			}
		}
	case AllEvents:
		b.WriteString("allEvents")
	case IsLocal:
		b.WriteString("isLocal")
	case AppID:
		b.WriteString("appId(")
		if bareAppID(x.ID) {
			b.WriteString(x.ID)
		} else {
			writeQuoted(b, x.ID)
		}
		b.WriteByte(')')
	case TimeFrom:
		b.WriteString("from(")
		b.WriteString(x.T.UTC().Format(time.RFC3339Nano))
		b.WriteByte(')')
	case TimeTo:
		b.WriteString("to(")
		b.WriteString(x.T.UTC().Format(time.RFC3339Nano))
		b.WriteByte(')')
	case nil:
		b.WriteString("<nil>")
	default:
		fmt.Fprintf(b, "<unsupported %T>", e)
	}
}

// writeQuoted writes s in single quotes, doubling the quotes inside.
func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('\'')
	b.WriteString(strings.ReplaceAll(s, "'", "''"))
	b.WriteByte('\'')
}

// bareAppID reports whether id reads back the same without quotes.
func bareAppID(id string) bool {
	if id == "" || strings.HasPrefix(id, "--") {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isAppIDByte(id[i]) {
			return false
		}
	}
	return true
}
