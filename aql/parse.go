package aql

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxQueryBytes bounds the length of a query's text.
const MaxQueryBytes = 64 << 10

// maxDepth bounds nesting of parentheses.
const maxDepth = 64

// SyntaxError is a query that does not parse. Pos is the byte offset of the
// problem, Line and Col its 1-based line and column (in runes).
type SyntaxError struct {
	Pos, Line, Col int
	Msg            string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("syntax error at line %d, column %d: %s", e.Line, e.Col, e.Msg)
}

// Parse parses an AQL query.
func Parse(src string) (*Query, error) {
	p := &parser{src: src}
	if len(src) > MaxQueryBytes {
		return nil, p.errAt(MaxQueryBytes, "query longer than %d bytes", MaxQueryBytes)
	}
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	q.Source = src
	q.once.Do(q.compile)
	return q, nil
}

// MustParse is Parse for queries known to be valid; it panics on error.
func MustParse(src string) *Query {
	q, err := Parse(src)
	if err != nil {
		panic(err)
	}
	return q
}

type parser struct {
	src   string
	pos   int
	depth int
}

func (p *parser) errAt(pos int, format string, args ...any) *SyntaxError {
	pos = min(pos, len(p.src))
	line, col := 1, 1
	for _, r := range p.src[:pos] {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &SyntaxError{Pos: pos, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// skip passes over white space and -- comments.
func (p *parser) skip() {
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.pos++
		case strings.HasPrefix(p.src[p.pos:], "--"):
			if i := strings.IndexByte(p.src[p.pos:], '\n'); i >= 0 {
				p.pos += i + 1
			} else {
				p.pos = len(p.src)
			}
		default:
			return
		}
	}
}

// found describes the token at the current position for error messages.
func (p *parser) found() string {
	if p.pos >= len(p.src) {
		return "end of query"
	}
	w := p.src[p.pos:]
	if n := identLen(w); n > 0 {
		return fmt.Sprintf("%q", w[:n])
	}
	r, _ := utf8.DecodeRuneInString(w)
	return fmt.Sprintf("%q", string(r))
}

func isIdent(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func identLen(s string) int {
	n := 0
	for n < len(s) && isIdent(s[n]) {
		n++
	}
	return n
}

// keyword consumes word (case-insensitively) if it stands next.
func (p *parser) keyword(word string) bool {
	p.skip()
	w := p.src[p.pos:]
	if len(w) >= len(word) && strings.EqualFold(w[:len(word)], word) && (len(w) == len(word) || !isIdent(w[len(word)])) {
		p.pos += len(word)
		return true
	}
	return false
}

func (p *parser) expect(c byte, what string) error {
	p.skip()
	if p.pos < len(p.src) && p.src[p.pos] == c {
		p.pos++
		return nil
	}
	return p.errAt(p.pos, "expected %s, found %s", what, p.found())
}

func (p *parser) query() (*Query, error) {
	q := &Query{}
	p.skip()
	if p.pos >= len(p.src) {
		return nil, p.errAt(p.pos, "empty query: expected FROM")
	}
	if p.keyword("FEATURES") {
		if err := p.expect('(', "( after FEATURES"); err != nil {
			return nil, err
		}
		for {
			p.skip()
			if p.pos < len(p.src) && p.src[p.pos] == ')' {
				p.pos++
				break
			}
			start := p.pos
			for p.pos < len(p.src) && (isIdent(p.src[p.pos]) || p.src[p.pos] == '-' || p.src[p.pos] >= 0x80) {
				p.pos++
			}
			if p.pos == start {
				return nil, p.errAt(p.pos, "expected feature name or ), found %s", p.found())
			}
			q.Features = append(q.Features, p.src[start:p.pos])
		}
	}
	if !p.keyword("FROM") {
		return nil, p.errAt(p.pos, "expected FROM, found %s", p.found())
	}
	where, err := p.or()
	if err != nil {
		return nil, err
	}
	q.Where = where
	p.keyword("END")
	p.skip()
	if p.pos < len(p.src) {
		return nil, p.errAt(p.pos, "unexpected %s after the query", p.found())
	}
	return q, nil
}

func (p *parser) or() (Expr, error) {
	var terms []Expr
	for {
		t, err := p.and()
		if err != nil {
			return nil, err
		}
		if o, ok := t.(Or); ok {
			terms = append(terms, o.Terms...)
		} else {
			terms = append(terms, t)
		}
		p.skip()
		if p.pos < len(p.src) && p.src[p.pos] == '|' {
			p.pos++
			continue
		}
		break
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return Or{Terms: terms}, nil
}

func (p *parser) and() (Expr, error) {
	var terms []Expr
	for {
		t, err := p.atom()
		if err != nil {
			return nil, err
		}
		if a, ok := t.(And); ok {
			terms = append(terms, a.Terms...)
		} else {
			terms = append(terms, t)
		}
		p.skip()
		if p.pos < len(p.src) && p.src[p.pos] == '&' {
			p.pos++
			continue
		}
		break
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return And{Terms: terms}, nil
}

func (p *parser) atom() (Expr, error) {
	p.skip()
	if p.pos >= len(p.src) {
		return nil, p.errAt(p.pos, "expected tag, allEvents, isLocal, appId(…), from(…), to(…) or (, found end of query")
	}
	start := p.pos
	switch c := p.src[p.pos]; {
	case c == '(':
		if p.depth >= maxDepth {
			return nil, p.errAt(p.pos, "parentheses nested deeper than %d", maxDepth)
		}
		p.pos++
		p.depth++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		p.depth--
		if err := p.expect(')', ") closing the ( at column "+fmt.Sprint(p.errAt(start, "").Col)); err != nil {
			return nil, err
		}
		return e, nil
	case c == '\'' || c == '"':
		s, err := p.quoted()
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, p.errAt(start, "empty tag")
		}
		return Tag{Name: s}, nil
	case isIdent(c):
		n := identLen(p.src[p.pos:])
		word := p.src[p.pos : p.pos+n]
		p.pos += n
		switch word {
		case "allEvents":
			return AllEvents{}, nil
		case "isLocal":
			return IsLocal{}, nil
		case "appId":
			arg, err := p.arg(start, func(b byte) bool { return isIdent(b) || b == '.' || b == '-' })
			if err != nil {
				return nil, err
			}
			return AppID{ID: arg}, nil
		case "from", "to":
			argPos := p.pos
			arg, err := p.arg(start, func(b byte) bool { return isIdent(b) || b == '-' || b == ':' || b == '.' || b == '+' })
			if err != nil {
				return nil, err
			}
			t, err := parseTime(arg)
			if err != nil {
				return nil, p.errAt(argPos+1, "%s(%s): %v", word, arg, err)
			}
			if word == "from" {
				return TimeFrom{T: t}, nil
			}
			return TimeTo{T: t}, nil
		}
		return nil, p.errAt(start, "unknown %q: expected a quoted tag, allEvents, isLocal, appId(…), from(…) or to(…)", word)
	}
	return nil, p.errAt(p.pos, "expected tag, allEvents, isLocal, appId(…), from(…), to(…) or (, found %s", p.found())
}

// arg reads "(x)" where x is a run of accepted bytes or a quoted string.
func (p *parser) arg(fn int, accept func(byte) bool) (string, error) {
	if err := p.expect('(', "("); err != nil {
		return "", err
	}
	p.skip()
	var s string
	if p.pos < len(p.src) && (p.src[p.pos] == '\'' || p.src[p.pos] == '"') {
		var err error
		if s, err = p.quoted(); err != nil {
			return "", err
		}
	} else {
		start := p.pos
		for p.pos < len(p.src) && accept(p.src[p.pos]) {
			p.pos++
		}
		s = p.src[start:p.pos]
	}
	if s == "" {
		return "", p.errAt(p.pos, "expected an argument, found %s", p.found())
	}
	if err := p.expect(')', ")"); err != nil {
		return "", err
	}
	return s, nil
}

// quoted reads a string in single or double quotes; a doubled quote stands
// for itself.
func (p *parser) quoted() (string, error) {
	q := p.src[p.pos]
	start := p.pos
	p.pos++
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		p.pos++
		if c != q {
			b.WriteByte(c)
			continue
		}
		if p.pos < len(p.src) && p.src[p.pos] == q {
			b.WriteByte(q)
			p.pos++
			continue
		}
		s := b.String()
		if !utf8.ValidString(s) {
			return "", p.errAt(start, "quoted string is not valid UTF-8")
		}
		return s, nil
	}
	return "", p.errAt(start, "unterminated %c quote", q)
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an RFC 3339 time or a date (want e.g. 2026-01-01T00:00:00Z or 2026-01-01)")
}
