package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/edgelog/edgelog/expiry"
)

// fileConfig is the YAML configuration file. See config.example.yaml.
type fileConfig struct {
	Data       yString     `yaml:"data"`
	API        yString     `yaml:"api"`
	Durability yString     `yaml:"durability"`
	Auth       fileAuth    `yaml:"auth"`
	Limits     fileLimits  `yaml:"limits"`
	Storage    fileStorage `yaml:"storage"`
	Repl       fileRepl    `yaml:"replication"`
	Log        fileLog     `yaml:"log"`
	Streams    yStreams    `yaml:"streams"` // streams.go
	Routes     yRoutes     `yaml:"routes"`
}

type fileRepl struct {
	Enabled   yBool    `yaml:"enabled"`
	Listen    yStrings `yaml:"listen"`
	Bootstrap yStrings `yaml:"bootstrap"`
	Swarm     yString  `yaml:"swarm"`
	SwarmKey  yString  `yaml:"swarmKey"`
	MDNS      yBool    `yaml:"mdns"`
	MaxPeers  yInt     `yaml:"maxPeers"`
}

type fileAuth struct {
	DevMode     yBool     `yaml:"devMode"`
	AllowedApps yStrings  `yaml:"allowedApps"`
	TokenTTL    yDuration `yaml:"tokenTTL"`
}

type fileLimits struct {
	MaxPayloadBytes     ySize     `yaml:"maxPayloadBytes"`
	MaxTagsPerEvent     yInt      `yaml:"maxTagsPerEvent"`
	MaxTagBytes         ySize     `yaml:"maxTagBytes"`
	MaxEventsPerPublish yInt      `yaml:"maxEventsPerPublish"`
	MaxRequestBytes     ySize     `yaml:"maxRequestBytes"`
	RequestBodyTimeout  yDuration `yaml:"requestBodyTimeout"`
}

type fileStorage struct {
	MemTableSize   ySize     `yaml:"memTableSize"`
	BlockCacheSize ySize     `yaml:"blockCacheSize"`
	NumCompactors  yInt      `yaml:"numCompactors"`
	MinFreeBytes   ySize     `yaml:"minFreeBytes"`
	Profile        yString   `yaml:"profile"`
	MaxDBBytes     ySize     `yaml:"maxDBBytes"`
	TrimInterval   yDuration `yaml:"trimInterval"`
	IdempotencyTTL yDuration `yaml:"idempotencyTTL"`
}

type fileLog struct {
	Level  yString `yaml:"level"`
	Format yString `yaml:"format"`
}

// yPos is where a value stands in the configuration file; Line 0 means the
// key is absent.
type yPos struct{ Line, Col int }

func (p yPos) set() bool { return p.Line > 0 }

func posOf(n ast.Node) yPos {
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return yPos{Line: tk.Position.Line, Col: tk.Position.Column}
	}
	return yPos{Line: 1, Col: 1}
}

// valueError is a value of the configuration file of the wrong kind.
type valueError struct {
	tok  *token.Token
	want string
}

func (e *valueError) Error() string { return "want " + e.want }

func wrongKind(n ast.Node, want string) error {
	return &valueError{tok: n.GetToken(), want: want}
}

// isNull reports whether n is an explicit or implicit YAML null (a key
// without value), which leaves a setting unset.
func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return ok
}

type yString struct {
	V string
	yPos
}

// UnmarshalYAML accepts a string.
func (y *yString) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	s, ok := n.(*ast.StringNode)
	if !ok {
		return wrongKind(n, "a string")
	}
	y.V, y.yPos = s.Value, posOf(n)
	return nil
}

type yBool struct {
	V bool
	yPos
}

// UnmarshalYAML accepts true or false.
func (y *yBool) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	b, ok := n.(*ast.BoolNode)
	if !ok {
		return wrongKind(n, "true or false")
	}
	y.V, y.yPos = b.Value, posOf(n)
	return nil
}

type yStrings struct {
	V []string
	yPos
}

// UnmarshalYAML accepts a sequence of strings.
func (y *yStrings) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		return wrongKind(n, "a list of strings")
	}
	y.V = []string{}
	for _, v := range seq.Values {
		s, ok := v.(*ast.StringNode)
		if !ok {
			return wrongKind(v, "a string")
		}
		y.V = append(y.V, s.Value)
	}
	y.yPos = posOf(n)
	return nil
}

type yDuration struct {
	V time.Duration
	yPos
}

// UnmarshalYAML accepts a Go duration string such as "24h" or "90m".
func (y *yDuration) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	s, ok := n.(*ast.StringNode)
	if !ok {
		return wrongKind(n, `a duration such as "24h" or "90m"`)
	}
	d, err := time.ParseDuration(s.Value)
	if err != nil {
		return wrongKind(n, `a duration such as "24h" or "90m"`)
	}
	y.V, y.yPos = d, posOf(n)
	return nil
}

type yInt struct {
	V int64
	yPos
}

// UnmarshalYAML accepts an integer.
func (y *yInt) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		return wrongKind(n, "an integer")
	}
	switch v := in.Value.(type) {
	case int64:
		y.V = v
	case uint64:
		if v > math.MaxInt64 {
			return wrongKind(n, "a smaller integer")
		}
		y.V = int64(v)
	default:
		return wrongKind(n, "an integer")
	}
	y.yPos = posOf(n)
	return nil
}

type ySize struct {
	V int64
	yPos
}

const sizeKinds = `a size in bytes: an integer or a string such as "64MiB"`

// UnmarshalYAML accepts a number of bytes: an integer, or a string with a
// unit (B, KB, MB, GB, KiB, MiB, GiB).
func (y *ySize) UnmarshalYAML(n ast.Node) error {
	if isNull(n) {
		return nil
	}
	switch v := n.(type) {
	case *ast.IntegerNode:
		var i yInt
		if err := i.UnmarshalYAML(n); err != nil {
			return wrongKind(n, sizeKinds)
		}
		y.V = i.V
	case *ast.StringNode:
		sz, err := parseSize(v.Value)
		if err != nil {
			return wrongKind(n, sizeKinds)
		}
		y.V = sz
	default:
		return wrongKind(n, sizeKinds)
	}
	y.yPos = posOf(n)
	return nil
}

// parseSize parses a byte size such as "4096", "64MiB" or "1 GB", with the
// same units as the retention settings (expiry.ParseSize).
func parseSize(s string) (int64, error) { return expiry.ParseSize(s) }

// loadFile reads and strictly decodes the configuration file at path.
// Unknown keys and values of the wrong type are errors naming the key and
// its line.
func loadFile(path string) (*fileConfig, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var fc fileConfig
	if err := yaml.UnmarshalWithOptions(src, &fc, yaml.Strict()); err != nil {
		return nil, describeYAMLError(path, src, err)
	}
	return &fc, nil
}

// describeYAMLError turns a decoding error into "FILE:LINE:COL: KEY: what".
func describeYAMLError(path string, src []byte, err error) error {
	var (
		tok *token.Token
		msg string
	)
	var ve *valueError
	var ye yaml.Error
	switch {
	case errors.As(err, &ve):
		tok = ve.tok
		msg = "wrong type " + describeToken(tok) + ": " + ve.Error()
	case errors.As(err, &ye):
		tok = ye.GetToken()
		var uf *yaml.UnknownFieldError
		var te *yaml.TypeError
		var ne *yaml.UnexpectedNodeTypeError
		switch {
		case errors.As(err, &uf):
			msg = "unknown key"
		case errors.As(err, &te), errors.As(err, &ne):
			msg = "wrong type " + describeToken(tok) + ": want a mapping"
		default:
			msg = ye.GetMessage()
		}
	default:
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if tok == nil || tok.Position == nil {
		return fmt.Errorf("config file %s: %s: %w", path, msg, err)
	}
	p := tok.Position
	if key := keyPathAt(src, p.Line, p.Column); key != "" {
		msg = key + ": " + msg
	}
	return &fileError{msg: fmt.Sprintf("%s:%d:%d: %s", path, p.Line, p.Column, msg), err: err}
}

// fileError is a problem in the configuration file. Its message is short
// (without the YAML library's source excerpt); Unwrap gives the YAML error.
type fileError struct {
	msg string
	err error
}

func (e *fileError) Error() string { return "invalid configuration: " + e.msg }

func (e *fileError) Unwrap() error { return e.err }

func describeToken(tok *token.Token) string {
	if tok == nil {
		return ""
	}
	v := tok.Value
	if tok.Type == token.MappingStartType || tok.Type == token.SequenceStartType {
		v = tok.Origin
	}
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	return strconv.Quote(v)
}

// keyPathAt returns the dotted path (like "auth.devMode") of the key or value
// at line:col of the YAML document src, or "".
func keyPathAt(src []byte, line, col int) string {
	f, err := parser.ParseBytes(src, 0)
	if err != nil {
		return ""
	}
	for _, doc := range f.Docs {
		if p, ok := findPath(doc.Body, "", line, col); ok {
			return p
		}
	}
	return ""
}

func findPath(n ast.Node, prefix string, line, col int) (string, bool) {
	at := func(x ast.Node) bool {
		if x == nil {
			return false
		}
		tk := x.GetToken()
		return tk != nil && tk.Position != nil && tk.Position.Line == line && tk.Position.Column == col
	}
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		for _, mv := range v.Values {
			if p, ok := findPath(mv, prefix, line, col); ok {
				return p, true
			}
		}
	case *ast.MappingValueNode:
		key := join(v.Key.GetToken().Value)
		if at(v.Key) || at(v.Value) || at(v) {
			return key, true
		}
		return findPath(v.Value, key, line, col)
	case *ast.SequenceNode:
		for i, e := range v.Values {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			if at(e) {
				return p, true
			}
			if q, ok := findPath(e, p, line, col); ok {
				return q, true
			}
		}
	case *ast.TagNode:
		return findPath(v.Value, prefix, line, col)
	case *ast.AnchorNode:
		return findPath(v.Value, prefix, line, col)
	}
	return "", false
}
