package api

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of an app manifest.
const (
	maxAppIDLen       = 128
	maxDisplayNameLen = 256
	maxVersionLen     = 64
	// maxTokenLen bounds the bearer token accepted before any decoding.
	maxTokenLen = 4096
)

// tokenSigContext is prepended to the signed bytes of a token. The node key
// also signs other things (libp2p records, stream heads); the prefix keeps a
// token signature from ever being valid for any of them, and vice versa.
const tokenSigContext = "edgelog/api-token/v1\n"

// claims is the signed content of a bearer token.
type claims struct {
	AppID       string `json:"appId"`
	DisplayName string `json:"displayName,omitempty"`
	Version     string `json:"version,omitempty"`
	NodeID      string `json:"nodeId,omitempty"`
	IssuedAt    int64  `json:"issuedAt"`  // Unix seconds
	ExpiresAt   int64  `json:"expiresAt"` // Unix seconds
}

// b64 encodes and decodes tokens: unpadded base64url, decoded strictly, so
// each token has one spelling (a character differing only in padding bits
// is refused, not read as the same bytes).
var b64 = base64.RawURLEncoding.Strict()

// issueToken returns base64url(claims JSON) "." base64url(signature).
func issueToken(key ed25519.PrivateKey, c claims) (string, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	head := b64.EncodeToString(body)
	sig := ed25519.Sign(key, []byte(tokenSigContext+head))
	return head + "." + b64.EncodeToString(sig), nil
}

// parseToken checks a token's form and signature and returns its claims. It
// does not check expiry.
func parseToken(pub ed25519.PublicKey, tok string) (claims, *Error) {
	invalid := func(msg string) (claims, *Error) {
		return claims{}, newError(http.StatusUnauthorized, CodeTokenInvalid, "%s", msg)
	}
	if len(tok) > maxTokenLen {
		return invalid("malformed token: too long")
	}
	head, sigText, ok := strings.Cut(tok, ".")
	if !ok || head == "" || sigText == "" || strings.Contains(sigText, ".") {
		return invalid("malformed token: want <claims>.<signature>")
	}
	sig, err := b64.DecodeString(sigText)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return invalid("malformed token: bad signature encoding")
	}
	if !ed25519.Verify(pub, []byte(tokenSigContext+head), sig) {
		return invalid("bad token signature: not issued by this node")
	}
	body, err := b64.DecodeString(head)
	if err != nil {
		return invalid("malformed token: bad claims encoding")
	}
	var c claims
	if err := json.Unmarshal(body, &c); err != nil || c.AppID == "" {
		return invalid("malformed token: bad claims")
	}
	return c, nil
}

// bearerToken extracts the token of an "Authorization: Bearer <token>" header.
func bearerToken(r *http.Request) (string, *Error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", newError(http.StatusUnauthorized, CodeTokenInvalid, "missing bearer token: send Authorization: Bearer <token> from POST %s", PathAuth)
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", newError(http.StatusUnauthorized, CodeTokenInvalid, "malformed Authorization header: want Bearer <token>")
	}
	return strings.TrimSpace(tok), nil
}

// validAppID reports whether id has the form of an app id: dot-separated
// segments of lowercase letters, digits, '-' and '_', each starting with a
// letter or digit, at most maxAppIDLen bytes in all.
func validAppID(id string) bool {
	if id == "" || len(id) > maxAppIDLen {
		return false
	}
	for seg := range strings.SplitSeq(id, ".") {
		if seg == "" {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			case (c == '-' || c == '_') && i > 0:
			default:
				return false
			}
		}
	}
	return true
}

// validText reports whether s is valid UTF-8 of at most max bytes without
// control characters.
func validText(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// checkManifest validates an auth request.
func checkManifest(m AuthRequest) *Error {
	switch {
	case m.AppID == "":
		return badRequest("missing field appId")
	case !validAppID(m.AppID):
		return badRequest("invalid appId %q: want dot-separated segments of a-z, 0-9, '-' and '_', at most %d bytes", truncate(m.AppID, maxAppIDLen), maxAppIDLen)
	case !validText(m.DisplayName, maxDisplayNameLen):
		return badRequest("invalid displayName: want at most %d bytes of printable UTF-8", maxDisplayNameLen)
	case !validText(m.Version, maxVersionLen):
		return badRequest("invalid version: want at most %d bytes of printable UTF-8", maxVersionLen)
	}
	return nil
}

// appAllowed reports whether appID may use the API: in dev mode every
// com.example.* app, and every app matching an entry of allowed (an app id,
// a prefix pattern ending in ".*", or "*" for all).
func appAllowed(appID string, devMode bool, allowed []string) bool {
	if devMode && strings.HasPrefix(appID, "com.example.") {
		return true
	}
	for _, p := range allowed {
		switch {
		case p == "*" || p == appID:
			return true
		case strings.HasSuffix(p, ".*") && strings.HasPrefix(appID, p[:len(p)-1]):
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
