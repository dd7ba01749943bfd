package aql

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxQueryBytes bounds the length of a query's text; longer input is a
// syntax error rather than work for the parser.
const maxQueryBytes = 64 << 10

// maxDepth bounds the nesting of parentheses, and with it the parser's
// recursion and the depth of the resulting tree.
const maxDepth = 64

// SyntaxError is a query that does not parse. Pos is the byte offset of the
// problem in the query text, Line and Col its 1-based line and column (Col
// counts runes), Msg what is wrong there.
type SyntaxError struct {
	Pos, Line, Col int
	Msg            string
}

// Error renders the error as "syntax error at line L, column C: Msg".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("syntax error at line %d, column %d: %s", e.Line, e.Col, e.Msg)
}

// Parse parses an AQL query:
//
//	query     = [ "FEATURES" "(" { word } ")" ] "FROM" or [ "END" ]
//	or        = and { "|" and }
//	and       = atom { "&" atom }
//	atom      = tag | "(" or ")" | "allEvents" | "isLocal"
//	          | "appId" "(" appid ")" | "from" "(" time ")" | "to" "(" time ")"
//	tag       = "'" chars "'" | '"' chars '"'   (a doubled quote stands for itself)
//	appid     = letters, digits, ".", "-", "_"; or a quoted string
//	time      = RFC 3339 time with Z or an offset, or a date (midnight UTC); may be quoted
//
// FEATURES, FROM and END are case-insensitive; the function names are not.
// White space and "--" comments (to the end of the line) may stand between
// tokens. Nested terms of the same kind are flattened: 'a' & ('b' & 'c') is
// one And of three tags, and a single term is not wrapped in And or Or.
//
// Every error is a *SyntaxError naming the position of the problem. Queries
// longer than 64 KiB or nesting parentheses deeper than 64 levels are errors.
func Parse(src string) (*Query, error) {
	p := &parser{src: src}
	if len(src) > maxQueryBytes {
		return nil, p.errAt(maxQueryBytes, "query longer than %d bytes", maxQueryBytes)
	}
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	q.Source = src
	q.once.Do(q.compile)
	return q, nil
}

// MustParse is Parse for queries known to be valid, such as constants in
// tests and examples; it panics if src does not parse.
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

// lineCol returns the 1-based line and column (in runes) of byte offset pos.
func (p *parser) lineCol(pos int) (line, col int) {
	line, col = 1, 1
	for _, r := range p.src[:pos] {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func (p *parser) errAt(pos int, format string, args ...any) *SyntaxError {
	pos = max(0, min(pos, len(p.src)))
	line, col := p.lineCol(pos)
	return &SyntaxError{Pos: pos, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// skip passes over white space and -- comments.
func (p *parser) skip() {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			p.pos++
		case c == '-' && strings.HasPrefix(p.src[p.pos:], "--"):
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
	r, size := utf8.DecodeRuneInString(w)
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("invalid UTF-8 byte %#x", w[0])
	}
	return fmt.Sprintf("%q", string(r))
}

func isIdent(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// isAppIDByte reports whether c may appear in an unquoted app ID.
func isAppIDByte(c byte) bool { return isIdent(c) || c == '.' || c == '-' }

// isTimeByte reports whether c may appear in an unquoted time.
func isTimeByte(c byte) bool { return isIdent(c) || c == '-' || c == ':' || c == '.' || c == '+' }

func identLen(s string) int {
	n := 0
	for n < len(s) && isIdent(s[n]) {
		n++
	}
	return n
}

// featureLen returns the length in bytes of the feature word s starts with:
// letters, digits, "-" and "_".
func featureLen(s string) int {
	n := 0
	for n < len(s) {
		if c := s[n]; c < utf8.RuneSelf {
			if !isIdent(c) && c != '-' {
				break
			}
			n++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[n:])
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			break // includes invalid UTF-8, which decodes as RuneError
		}
		n += size
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

// next reports whether byte c stands next (after white space and comments)
// and consumes it if so.
func (p *parser) next(c byte) bool {
	p.skip()
	if p.pos < len(p.src) && p.src[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expect(c byte, what string) error {
	if p.next(c) {
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
		for !p.next(')') {
			n := featureLen(p.src[p.pos:])
			if n == 0 {
				return nil, p.errAt(p.pos, "expected feature name or ), found %s", p.found())
			}
			q.Features = append(q.Features, p.src[p.pos:p.pos+n])
			p.pos += n
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
	first, err := p.and()
	if err != nil || !p.next('|') {
		return first, err // a single term, not copied however large
	}
	terms := appendFlatOr(nil, first)
	for {
		t, err := p.and()
		if err != nil {
			return nil, err
		}
		terms = appendFlatOr(terms, t)
		if !p.next('|') {
			return Or{Terms: terms}, nil
		}
	}
}

func (p *parser) and() (Expr, error) {
	first, err := p.atom()
	if err != nil || !p.next('&') {
		return first, err // a single term, not copied however large
	}
	terms := appendFlatAnd(nil, first)
	for {
		t, err := p.atom()
		if err != nil {
			return nil, err
		}
		terms = appendFlatAnd(terms, t)
		if !p.next('&') {
			return And{Terms: terms}, nil
		}
	}
}

// appendFlatOr appends t to terms, or t's terms if t is an Or.
func appendFlatOr(terms []Expr, t Expr) []Expr {
	if o, ok := t.(Or); ok {
		return append(terms, o.Terms...)
	}
	return append(terms, t)
}

// appendFlatAnd appends t to terms, or t's terms if t is an And.
func appendFlatAnd(terms []Expr, t Expr) []Expr {
	if a, ok := t.(And); ok {
		return append(terms, a.Terms...)
	}
	return append(terms, t)
}

const expectedAtom = `expected tag literal, allEvents, isLocal, appId(…), from(…), to(…) or "("`

func (p *parser) atom() (Expr, error) {
	p.skip()
	if p.pos >= len(p.src) {
		return nil, p.errAt(p.pos, "%s, found end of query", expectedAtom)
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
		if !p.next(')') {
			line, col := p.lineCol(start)
			return nil, p.errAt(p.pos, "expected ) closing the ( at line %d, column %d, found %s", line, col, p.found())
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
			arg, _, err := p.arg(word, isAppIDByte)
			if err != nil {
				return nil, err
			}
			return AppID{ID: arg}, nil
		case "from", "to":
			arg, argPos, err := p.arg(word, isTimeByte)
			if err != nil {
				return nil, err
			}
			t, ok := parseTime(arg)
			if !ok {
				return nil, p.errAt(argPos, "%s(%s): not an RFC 3339 time or a date in the years 0000 to 9999 UTC (want e.g. 2026-01-01T00:00:00Z or 2026-01-01)", word, arg)
			}
			if word == "from" {
				return TimeFrom{T: t}, nil
			}
			return TimeTo{T: t}, nil
		}
		return nil, p.errAt(start, "unknown %q: %s", word, expectedAtom)
	}
	return nil, p.errAt(p.pos, "%s, found %s", expectedAtom, p.found())
}

// arg reads "(x)" after the function name fn, where x is a non-empty run of
// accepted bytes or a quoted string. It returns x and its position.
func (p *parser) arg(fn string, accept func(byte) bool) (string, int, error) {
	if err := p.expect('(', "( after "+fn); err != nil {
		return "", 0, err
	}
	p.skip()
	start := p.pos
	var s string
	if p.pos < len(p.src) && (p.src[p.pos] == '\'' || p.src[p.pos] == '"') {
		var err error
		if s, err = p.quoted(); err != nil {
			return "", 0, err
		}
		if s == "" {
			return "", 0, p.errAt(start, "empty argument to %s", fn)
		}
	} else {
		for p.pos < len(p.src) && accept(p.src[p.pos]) {
			p.pos++
		}
		s = p.src[start:p.pos]
		if s == "" {
			return "", 0, p.errAt(p.pos, "expected an argument to %s, found %s", fn, p.found())
		}
	}
	if err := p.expect(')', ") after the argument to "+fn); err != nil {
		return "", 0, err
	}
	return s, start, nil
}

// quoted reads a string in single or double quotes; a doubled quote stands
// for itself. The content must be valid UTF-8.
func (p *parser) quoted() (string, error) {
	q := p.src[p.pos]
	start := p.pos
	p.pos++
	var b strings.Builder
	for {
		i := strings.IndexByte(p.src[p.pos:], q)
		if i < 0 {
			return "", p.errAt(start, "unterminated %c quote", q)
		}
		b.WriteString(p.src[p.pos : p.pos+i])
		p.pos += i + 1
		if p.pos < len(p.src) && p.src[p.pos] == q {
			b.WriteByte(q)
			p.pos++
			continue
		}
		break
	}
	s := b.String()
	if !utf8.ValidString(s) {
		return "", p.errAt(start, "quoted string is not valid UTF-8")
	}
	return s, nil
}

// parseTime parses an RFC 3339 time (with Z or an offset, optionally with
// fractional seconds) or a plain date, meaning midnight UTC. The result is
// in UTC, and in the years 0000 to 9999 there: a query's canonical form
// writes times in UTC, which RFC 3339 cannot outside them (0000-01-01 at
// +01:00 is in year -1).
func parseTime(s string) (time.Time, bool) {
	layout := time.RFC3339Nano
	if len(s) == len("2006-01-02") {
		layout = time.DateOnly
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, false
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}
