package api

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAuthIssuesSignedToken(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TokenTTL = time.Hour })
	tok := h.token("com.example.app")
	head, sig, ok := strings.Cut(tok, ".")
	if !ok {
		t.Fatalf("token %q has no '.'", tok)
	}
	rawSig, err := b64.DecodeString(sig)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(h.key.Public().(ed25519.PublicKey), []byte(tokenSigContext+head), rawSig) {
		t.Fatal("token signature does not verify with the node key")
	}
	body, err := b64.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(m); got != "appId,displayName,expiresAt,issuedAt,nodeId,version" {
		t.Errorf("claims keys = %s", got)
	}
	now := h.clock.Now().Unix()
	if m["appId"] != "com.example.app" || m["nodeId"] != testNode || m["displayName"] != "Test" || m["version"] != "1.0" {
		t.Errorf("claims = %v", m)
	}
	if m["issuedAt"] != float64(now) || m["expiresAt"] != float64(now+3600) {
		t.Errorf("issuedAt/expiresAt = %v/%v, want %d/%d", m["issuedAt"], m["expiresAt"], now, now+3600)
	}
	resp, b := h.do(http.MethodGet, PathNodeID, tok, "")
	if resp.StatusCode != http.StatusOK || string(b) != testNode {
		t.Fatalf("node id with fresh token: %d %s", resp.StatusCode, b)
	}
}

func TestAuthManifest(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AllowedApps = []string{"org.acme.tool", "net.corp.*"} })
	long := strings.Repeat("a", maxAppIDLen+1)
	cases := []struct {
		name, body string
		status     int
		code       string
		mention    string
	}{
		{"dev mode app", `{"appId":"com.example.x","displayName":"X","version":"1"}`, 200, "", ""},
		{"only appId", `{"appId":"com.example.x"}`, 200, "", ""},
		{"unknown fields accepted", `{"appId":"com.example.x","signature":"abc","extra":[1]}`, 200, "", ""},
		{"allowed exact", `{"appId":"org.acme.tool"}`, 200, "", ""},
		{"allowed pattern", `{"appId":"net.corp.a"}`, 200, "", ""},
		{"allowed pattern deep", `{"appId":"net.corp.a.b"}`, 200, "", ""},
		{"pattern needs a segment", `{"appId":"net.corp"}`, 403, CodeAppUnauthorized, "net.corp"},
		{"not allowed", `{"appId":"org.acme.other"}`, 403, CodeAppUnauthorized, "org.acme.other"},
		{"missing appId", `{"displayName":"X"}`, 400, CodeBadRequest, "appId"},
		{"appId wrong type", `{"appId":5}`, 400, CodeBadRequest, "appId"},
		{"uppercase appId", `{"appId":"com.example.Foo"}`, 400, CodeBadRequest, "appId"},
		{"empty segment", `{"appId":"com..example"}`, 400, CodeBadRequest, "appId"},
		{"bad char", `{"appId":"com.example.x!"}`, 400, CodeBadRequest, "appId"},
		{"leading dash", `{"appId":"com.example.-x"}`, 400, CodeBadRequest, "appId"},
		{"too long", `{"appId":"` + long + `"}`, 400, CodeBadRequest, "appId"},
		{"displayName too long", `{"appId":"com.example.x","displayName":"` + strings.Repeat("d", maxDisplayNameLen+1) + `"}`, 400, CodeBadRequest, "displayName"},
		{"displayName control", `{"appId":"com.example.x","displayName":"a\u0007b"}`, 400, CodeBadRequest, "displayName"},
		{"version wrong type", `{"appId":"com.example.x","version":1.0}`, 400, CodeBadRequest, "version"},
		{"malformed", `{"appId":`, 400, CodeBadRequest, "malformed"},
		{"not an object", `["com.example.x"]`, 400, CodeBadRequest, "object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.do(http.MethodPost, PathAuth, "", tc.body)
			if tc.status == 200 {
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				var m map[string]any
				if err := json.Unmarshal(body, &m); err != nil || keysOf(m) != "token" {
					t.Fatalf("answer %s: want {\"token\"}", body)
				}
				return
			}
			wantError(t, resp, body, tc.status, tc.code, tc.mention)
		})
	}
}

func TestAuthDevModeOff(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DevMode = false })
	resp, body := h.do(http.MethodPost, PathAuth, "", `{"appId":"com.example.x"}`)
	wantError(t, resp, body, http.StatusForbidden, CodeAppUnauthorized, "com.example.x")
}

func TestTokenChecks(t *testing.T) {
	h := newHarness(t, nil)
	good := h.token("com.example.app")
	head, sig, _ := strings.Cut(good, ".")

	otherKey := testKey(t)
	foreign, err := issueToken(otherKey, claims{AppID: "com.example.app", NodeID: testNode, ExpiresAt: h.clock.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	tampered := b64.EncodeToString([]byte(strings.Replace(mustDecode(t, head), "com.example.app", "com.example.evil", 1))) + "." + sig
	otherNode, err := issueToken(h.key, claims{AppID: "com.example.app", NodeID: "12D3KooWOther", ExpiresAt: h.clock.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	// A token of an app that is signed correctly but no longer allowed.
	notAllowed, err := issueToken(h.key, claims{AppID: "org.other.app", NodeID: testNode, ExpiresAt: h.clock.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}

	// The signature's last character carries 2 bits of it and 4 padding
	// bits: setting one of those keeps the bytes and breaks the canonical
	// encoding.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	padded := head + "." + sig[:len(sig)-1] + string(alphabet[last^1])
	if d, err := base64.RawURLEncoding.DecodeString(padded[len(head)+1:]); err != nil || string(d) != mustDecode(t, sig) {
		t.Fatalf("the altered signature does not decode to the same bytes leniently: %v", err)
	}

	cases := []struct {
		name, header string
		status       int
		code         string
		mention      string
	}{
		{"no header", "", 401, CodeTokenInvalid, "missing"},
		{"wrong scheme", "Basic " + good, 401, CodeTokenInvalid, "Bearer"},
		{"bearer without token", "Bearer ", 401, CodeTokenInvalid, "Bearer"},
		{"no dot", "Bearer abc", 401, CodeTokenInvalid, "malformed"},
		{"three parts", "Bearer " + good + ".x", 401, CodeTokenInvalid, "malformed"},
		{"bad base64 signature", "Bearer " + head + ".!!!", 401, CodeTokenInvalid, "malformed"},
		{"signature padding bits set", "Bearer " + padded, 401, CodeTokenInvalid, "malformed"},
		{"short signature", "Bearer " + head + "." + b64.EncodeToString([]byte("short")), 401, CodeTokenInvalid, "malformed"},
		{"foreign key", "Bearer " + foreign, 401, CodeTokenInvalid, "signature"},
		{"tampered claims", "Bearer " + tampered, 401, CodeTokenInvalid, "signature"},
		{"other node", "Bearer " + otherNode, 401, CodeTokenInvalid, "another node"},
		{"too long", "Bearer " + strings.Repeat("a", maxTokenLen+1), 401, CodeTokenInvalid, "too long"},
		{"app not allowed", "Bearer " + notAllowed, 403, CodeAppUnauthorized, "org.other.app"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, h.ts.URL+PathNodeID, nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := h.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			wantError(t, resp, body, tc.status, tc.code, tc.mention)
			if tc.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}

	t.Run("lowercase scheme accepted", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, h.ts.URL+PathNodeID, nil)
		req.Header.Set("Authorization", "bearer "+good)
		resp, err := h.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})

	t.Run("expired", func(t *testing.T) {
		h.clock.Advance(DefaultTokenTTL - time.Second)
		if resp, body := h.do(http.MethodGet, PathNodeID, good, ""); resp.StatusCode != 200 {
			t.Fatalf("token rejected a second before expiry: %d %s", resp.StatusCode, body)
		}
		h.clock.Advance(time.Second)
		resp, body := h.do(http.MethodGet, PathNodeID, good, "")
		wantError(t, resp, body, http.StatusUnauthorized, CodeTokenExpired, "expired")
		fresh := h.token("com.example.app")
		if resp, body := h.do(http.MethodGet, PathNodeID, fresh, ""); resp.StatusCode != 200 {
			t.Fatalf("fresh token after expiry: %d %s", resp.StatusCode, body)
		}
	})
}

func TestEveryEndpointButAuthNeedsToken(t *testing.T) {
	h := newHarness(t, nil)
	for path, rt := range h.srv.routes {
		if path == PathAuth {
			continue
		}
		resp, body := h.do(rt.method, path, "", `{}`)
		wantError(t, resp, body, http.StatusUnauthorized, CodeTokenInvalid, "missing")
	}
	if _, _, calls := h.be.LastPublish(); calls != 0 {
		t.Fatalf("backend saw %d publishes without a token", calls)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(nil, Config{Key: testKey(t)}); err == nil {
		t.Error("nil backend accepted")
	}
	h := newHarness(t, nil)
	if _, err := New(h.be, Config{}); err == nil {
		t.Error("missing key accepted")
	}
	if _, err := New(h.be, Config{Key: testKey(t), TokenTTL: -1}); err == nil {
		t.Error("negative TTL accepted")
	}
}

func TestAppIDAndAllowList(t *testing.T) {
	for _, id := range []string{"a", "com.example.x", "x-1.y_2", "1.2.3"} {
		if !validAppID(id) {
			t.Errorf("validAppID(%q) = false", id)
		}
	}
	for _, id := range []string{"", ".", "a.", ".a", "A", "a b", "a/b", "_a", "é"} {
		if validAppID(id) {
			t.Errorf("validAppID(%q) = true", id)
		}
	}
	if appAllowed("com.example.x", false, nil) {
		t.Error("dev app allowed without dev mode")
	}
	if appAllowed("com.examplex", true, nil) {
		t.Error("com.examplex allowed by dev mode")
	}
	if !appAllowed("any.app", false, []string{"*"}) {
		t.Error(`"*" does not allow everything`)
	}
}

func mustDecode(t *testing.T, s string) string {
	t.Helper()
	b, err := b64.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
