package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

const (
	keyA = "key-of-webapp-0123456789abcdef"
	keyB = "key-of-other-app-0123456789abcd"
)

// env is a Server on a verifier for fixture.Host, with a clock of its own.
type env struct {
	t   *testing.T
	s   *Server
	v   *verifier.Verifier
	now time.Time
	log *fixture.Buffer
	reg *prometheus.Registry
}

func testConfig() *config.HTTP {
	return &config.HTTP{
		Listen:           "127.0.0.1:0",
		PerUserPerMinute: 3,
		Apps: map[string]config.HTTPApp{
			"webapp": {Key: []byte(keyA), Hosts: []string{fixture.Host}},
			"other":  {Key: []byte(keyB), Hosts: []string{"other.example"}},
		},
		Credentials: &config.HTTPCredentials{Host: fixture.Host, UserHeader: "X-Forwarded-User",
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("::1/128")}},
	}
}

func newEnv(t *testing.T, cfg *config.HTTP) *env {
	t.Helper()
	e := &env{t: t, now: time.Unix(1_800_000_000, 0), log: &fixture.Buffer{}, reg: prometheus.NewRegistry()}
	v, err := verifier.New(verifier.Config{
		Params: verifier.DefaultParams(),
		Hosts:  map[string]verifier.Host{fixture.Host: {TokenSecrets: [][]byte{[]byte(fixture.Secret)}, OTPSeeds: []string{fixture.Seed}}},
		Store:  replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: time.Hour}),
		Now:    func() time.Time { return e.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.v = v
	s, err := New(cfg, Options{
		Minter:     func() Minter { return e.v },
		Log:        slog.New(slog.NewTextHandler(e.log, nil)),
		Now:        func() time.Time { return e.now },
		Registerer: e.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	return e
}

// do sends a request from remote and returns the answer and its JSON body.
func (e *env) do(method, path, remote string, header map[string][]string, body string) (*http.Response, map[string]string) {
	e.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = remote
	for k, vs := range header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	e.s.ServeHTTP(w, r)
	res := w.Result()
	var m map[string]string
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		e.t.Errorf("%s %s: the body is not a JSON object: %v", method, path, err)
	}
	if ct, cc := res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
		e.t.Errorf("%s %s: Content-Type %q, Cache-Control %q; want application/json, no-store", method, path, ct, cc)
	}
	return res, m
}

func bearer(key string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + key}}
}

// TestTokens: POST /v1/tokens, every answer it gives.
func TestTokens(t *testing.T) {
	e := newEnv(t, testConfig())
	const from = "192.0.2.9:4000" // any peer: the key is what counts
	tests := []struct {
		name   string
		method string
		header map[string][]string
		body   string
		code   int
		jid    string // on 200: the JID answered
	}{
		{"minted", "POST", bearer(keyA), `{"jid":"alice@example.org"}`, 200, "alice@example.org"},
		// Local part and domain folded as the servers fold them.
		{"folded", "POST", bearer(keyA), `{"jid":"Bob@Example.ORG"}`, 200, "bob@example.org"},
		{"scheme case", "POST", map[string][]string{"Authorization": {"bearer " + keyA}}, `{"jid":"carol@example.org"}`, 200, "carol@example.org"},
		{"no key", "POST", nil, `{"jid":"alice@example.org"}`, 401, ""},
		{"wrong key", "POST", bearer(keyA + "x"), `{"jid":"alice@example.org"}`, 401, ""},
		{"key prefix", "POST", bearer(keyA[:20]), `{"jid":"alice@example.org"}`, 401, ""},
		{"empty key", "POST", bearer(""), `{"jid":"alice@example.org"}`, 401, ""},
		{"basic", "POST", map[string][]string{"Authorization": {"Basic " + keyA}}, `{"jid":"alice@example.org"}`, 401, ""},
		{"two keys", "POST", map[string][]string{"Authorization": {"Bearer " + keyB, "Bearer " + keyA}}, `{"jid":"alice@example.org"}`, 401, ""},
		// A host the application may not use; the other app's key does
		// not open this one's hosts.
		{"other host", "POST", bearer(keyA), `{"jid":"alice@other.example"}`, 403, ""},
		{"other app", "POST", bearer(keyB), `{"jid":"alice@example.org"}`, 403, ""},
		{"not json", "POST", bearer(keyA), `jid=alice@example.org`, 400, ""},
		{"empty body", "POST", bearer(keyA), ``, 400, ""},
		{"unknown field", "POST", bearer(keyA), `{"jid":"alice@example.org","admin":true}`, 400, ""},
		{"two values", "POST", bearer(keyA), `{"jid":"alice@example.org"}{"jid":"mallory@example.org"}`, 400, ""},
		{"no at", "POST", bearer(keyA), `{"jid":"alice"}`, 400, ""},
		{"resource", "POST", bearer(keyA), `{"jid":"alice@example.org/web"}`, 400, ""},
		{"two ats", "POST", bearer(keyA), `{"jid":"alice@bob@example.org"}`, 400, ""},
		{"space", "POST", bearer(keyA), `{"jid":"al ice@example.org"}`, 400, ""},
		{"quote", "POST", bearer(keyA), `{"jid":"al'ice@example.org"}`, 400, ""},
		{"control", "POST", bearer(keyA), `{"jid":"al\u0000ice@example.org"}`, 400, ""},
		{"non-ascii", "POST", bearer(keyA), `{"jid":"ålice@example.org"}`, 400, ""},
		{"empty local", "POST", bearer(keyA), `{"jid":"@example.org"}`, 400, ""},
		{"huge body", "POST", bearer(keyA), `{"jid":"` + strings.Repeat("a", 2*MaxBody) + `@example.org"}`, 413, ""},
		{"get", "GET", bearer(keyA), ``, 405, ""},
	}
	for _, tt := range tests {
		res, m := e.do(tt.method, "/v1/tokens", from, tt.header, tt.body)
		if res.StatusCode != tt.code {
			t.Errorf("%s: %d %v, want %d", tt.name, res.StatusCode, m, tt.code)
			continue
		}
		if tt.code != 200 {
			if m["error"] == "" || m["token"] != "" {
				t.Errorf("%s: body %v, want an error and no token", tt.name, m)
			}
			if tt.code == 401 && res.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", tt.name)
			}
			continue
		}
		if m["jid"] != tt.jid {
			t.Errorf("%s: jid %q, want %q", tt.name, m["jid"], tt.jid)
		}
		// The token logs its user in once, at the time it was minted.
		user, _, _ := strings.Cut(tt.jid, "@")
		if r := e.v.Verify(context.Background(), user, fixture.Host, m["token"]); !r.OK() {
			t.Errorf("%s: the token is refused: %v", tt.name, r.Reason)
		}
		if r := e.v.Verify(context.Background(), user, fixture.Host, m["token"]); r.OK() {
			t.Errorf("%s: the token is accepted twice", tt.name)
		}
		// Accepted for steps T-1..T+1: until the end of T+1.
		if want := time.Unix((e.now.Unix()/30+2)*30, 0).UTC().Format(time.RFC3339); m["expires"] != want {
			t.Errorf("%s: expires %q, want %q", tt.name, m["expires"], want)
		}
	}
	if log := e.log.String(); strings.Contains(log, keyA) || strings.Contains(log, keyA[:20]) {
		t.Errorf("the log holds a key:\n%s", log)
	}
}

// unixRemote is a request's context on a Unix socket listener.
func (e *env) doUnix(header map[string][]string) (*http.Response, map[string]string) {
	e.t.Helper()
	r := httptest.NewRequest("GET", "/v1/credentials", nil)
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.UnixAddr{Name: "/run/tokenauthd/http.sock", Net: "unix"}))
	r.RemoteAddr = "@"
	for k, vs := range header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	e.s.ServeHTTP(w, r)
	var m map[string]string
	json.NewDecoder(w.Result().Body).Decode(&m)
	return w.Result(), m
}

func user(name ...string) map[string][]string { return map[string][]string{"X-Forwarded-User": name} }

// TestCredentials: GET /v1/credentials, every answer it gives.
func TestCredentials(t *testing.T) {
	e := newEnv(t, testConfig())
	const proxy = "127.0.0.2:41000"
	tests := []struct {
		name   string
		method string
		remote string
		header map[string][]string
		code   int
		jid    string
	}{
		{"minted", "GET", proxy, user("alice"), 200, "alice@example.org"},
		{"folded", "GET", proxy, user("ALICE"), 200, "alice@example.org"},
		{"ipv6 proxy", "GET", "[::1]:41000", user("bob"), 200, "bob@example.org"},
		// A client that reaches the API itself, header and all.
		{"untrusted", "GET", "127.0.0.1:41000", user("alice"), 403, ""},
		{"public", "GET", "192.0.2.1:41000", user("alice"), 403, ""},
		{"mapped untrusted", "GET", "[::ffff:127.0.0.1]:41000", user("alice"), 403, ""},
		{"mapped trusted", "GET", "[::ffff:127.0.0.2]:41000", user("carol"), 200, "carol@example.org"},
		{"no header", "GET", proxy, nil, 401, ""},
		{"empty header", "GET", proxy, user(""), 401, ""},
		// A proxy that appended the client's header instead of
		// overwriting it: which one is the user is not for us to guess.
		{"two headers", "GET", proxy, user("mallory", "alice"), 400, ""},
		{"merged headers", "GET", proxy, user("mallory,alice"), 400, ""},
		{"jid as user", "GET", proxy, user("alice@example.org"), 400, ""},
		{"space", "GET", proxy, user("alice smith"), 400, ""},
		{"non-ascii", "GET", proxy, user("ålice"), 400, ""},
		{"post", "POST", proxy, user("alice"), 405, ""},
	}
	for _, tt := range tests {
		res, m := e.do(tt.method, "/v1/credentials", tt.remote, tt.header, "")
		if res.StatusCode != tt.code {
			t.Errorf("%s: %d %v, want %d", tt.name, res.StatusCode, m, tt.code)
			continue
		}
		if tt.code != 200 {
			if m["error"] == "" || m["password"] != "" {
				t.Errorf("%s: body %v, want an error and no password", tt.name, m)
			}
			continue
		}
		u, _, _ := strings.Cut(tt.jid, "@")
		if m["jid"] != tt.jid || !e.v.Verify(context.Background(), u, fixture.Host, m["password"]).OK() {
			t.Errorf("%s: %v: want jid %q and a password that logs in", tt.name, m, tt.jid)
		}
	}
	// On a Unix socket, the socket's mode decides who connects: no
	// trusted proxies, the header still needed.
	cfg := testConfig()
	cfg.Listen, cfg.Socket, cfg.Credentials.TrustedProxies = "", "/run/tokenauthd/http.sock", nil
	u := newEnv(t, cfg)
	if res, m := u.doUnix(user("dave")); res.StatusCode != 200 || m["jid"] != "dave@example.org" {
		t.Errorf("unix socket: %d %v, want 200 for dave", res.StatusCode, m)
	}
	if res, _ := u.doUnix(nil); res.StatusCode != 401 {
		t.Errorf("unix socket without the header: %d, want 401", res.StatusCode)
	}
	// Without [http.credentials], the endpoint is not there.
	cfg = testConfig()
	cfg.Credentials = nil
	if res, _ := newEnv(t, cfg).do("GET", "/v1/credentials", proxy, user("alice"), ""); res.StatusCode != 404 {
		t.Errorf("no credentials section: %d, want 404", res.StatusCode)
	}
	if res, _ := e.do("GET", "/v1/other", proxy, nil, ""); res.StatusCode != 404 {
		t.Errorf("unknown path: %d, want 404", res.StatusCode)
	}
}

// TestLimit: per_user_per_minute bounds the tokens of one JID, both
// endpoints together, until the next minute; other JIDs are not held.
func TestLimit(t *testing.T) {
	e := newEnv(t, testConfig()) // 3 a minute
	e.now = time.Unix(1_800_000_000-1_800_000_000%60+15, 0)
	const proxy = "127.0.0.2:41000"
	codes := []int{}
	for range 2 {
		res, _ := e.do("POST", "/v1/tokens", proxy, bearer(keyA), `{"jid":"alice@example.org"}`)
		codes = append(codes, res.StatusCode)
	}
	res, _ := e.do("GET", "/v1/credentials", proxy, user("Alice"), "")
	codes = append(codes, res.StatusCode)
	res, m := e.do("GET", "/v1/credentials", proxy, user("alice"), "")
	codes = append(codes, res.StatusCode)
	res2, _ := e.do("POST", "/v1/tokens", proxy, bearer(keyA), `{"jid":"ALICE@example.org"}`)
	codes = append(codes, res2.StatusCode)
	if want := []int{200, 200, 200, 429, 429}; !equal(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	if m["error"] == "" || res.Header.Get("Retry-After") != "45" {
		t.Errorf("429: %v, Retry-After %q; want an error and 45", m, res.Header.Get("Retry-After"))
	}
	if res, _ := e.do("GET", "/v1/credentials", proxy, user("bob"), ""); res.StatusCode != 200 {
		t.Errorf("another user: %d, want 200", res.StatusCode)
	}
	e.now = e.now.Add(45 * time.Second)
	if res, _ := e.do("GET", "/v1/credentials", proxy, user("alice"), ""); res.StatusCode != 200 {
		t.Errorf("the next minute: %d, want 200", res.StatusCode)
	}
	if n := testutil.ToFloat64(e.s.metrics.requests.WithLabelValues("credentials", "429")); n != 1 {
		t.Errorf("tokenauthd_http_requests_total{credentials,429} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(e.s.metrics.mints); n != 5 {
		t.Errorf("tokenauthd_tokens_minted_total = %v, want 5", n)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLimiterBounded: the JIDs counted in a minute are bounded; past the
// bound, new JIDs are refused until the next minute, counted ones go on.
func TestLimiterBounded(t *testing.T) {
	l := newLimiter()
	now := time.Unix(6000, 0)
	for i := range maxTracked {
		if ok, _ := l.allow(strconv.Itoa(i)+"@h", 2, now); !ok {
			t.Fatalf("JID %d refused", i)
		}
	}
	if ok, _ := l.allow("new@h", 2, now); ok {
		t.Error("a JID past the bound was counted")
	}
	if ok, _ := l.allow("0@h", 2, now); !ok {
		t.Error("a counted JID under its limit was refused")
	}
	if ok, _ := l.allow("new@h", 2, now.Add(time.Minute)); !ok || len(l.counts) != 1 {
		t.Errorf("the next minute: ok %v, %d counted; want a fresh count", ok, len(l.counts))
	}
}

// TestReload: a reload swaps the applications and their keys, and the
// credentials section; a nil configuration refuses everything.
func TestReload(t *testing.T) {
	e := newEnv(t, testConfig())
	const proxy = "127.0.0.2:41000"
	cfg := testConfig()
	cfg.Apps = map[string]config.HTTPApp{"webapp": {Key: []byte(keyB), Hosts: []string{fixture.Host}}}
	cfg.Credentials = nil
	if err := e.s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if res, _ := e.do("POST", "/v1/tokens", proxy, bearer(keyA), `{"jid":"a@example.org"}`); res.StatusCode != 401 {
		t.Errorf("old key after reload: %d, want 401", res.StatusCode)
	}
	if res, _ := e.do("POST", "/v1/tokens", proxy, bearer(keyB), `{"jid":"a@example.org"}`); res.StatusCode != 200 {
		t.Errorf("new key after reload: %d, want 200", res.StatusCode)
	}
	if res, _ := e.do("GET", "/v1/credentials", proxy, user("a"), ""); res.StatusCode != 404 {
		t.Errorf("credentials removed: %d, want 404", res.StatusCode)
	}
	e.s.Reload(nil)
	if res, _ := e.do("POST", "/v1/tokens", proxy, bearer(keyB), `{"jid":"a@example.org"}`); res.StatusCode != 401 {
		t.Errorf("[http] removed: %d, want 401", res.StatusCode)
	}
}

// TestMintLogged: each mint is logged with who asked and the JID, never
// the token.
func TestMintLogged(t *testing.T) {
	e := newEnv(t, testConfig())
	_, m := e.do("POST", "/v1/tokens", "127.0.0.1:1", bearer(keyA), `{"jid":"alice@example.org"}`)
	_, c := e.do("GET", "/v1/credentials", "127.0.0.2:2", user("bob"), "")
	log := e.log.String()
	for _, want := range []string{"app=webapp jid=alice@example.org", "proxy=127.0.0.2:2 jid=bob@example.org"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	for _, tok := range []string{m["token"], c["password"]} {
		_, sig, _ := strings.Cut(tok, " ")
		if tok == "" || strings.Contains(log, sig) || strings.Contains(log, tok[:20]) {
			t.Errorf("the log holds a token (or none was minted):\n%s", log)
		}
	}
}

// TestServe: the API on a real listener, TLS included, stops gracefully
// with its context.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.TLSCert, cfg.TLSKey = fixture.SelfSigned(t, dir)
	e := newEnv(t, cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := e.s.Start(ctx, l)
	defer stop()
	url := "https://" + l.Addr().String() + "/v1/tokens"
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"jid":"alice@example.org"}`))
	req.Header.Set("Authorization", "Bearer "+keyA)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), `"token"`) {
		t.Errorf("over TLS: %d %s", res.StatusCode, b)
	}
	// Plain HTTP to the TLS port gets no token.
	if res, err := http.Post("http://"+l.Addr().String()+"/v1/tokens", "application/json", strings.NewReader(`{"jid":"alice@example.org"}`)); err == nil {
		b, _ := io.ReadAll(res.Body)
		if strings.Contains(string(b), "token") && res.StatusCode == 200 {
			t.Errorf("plain HTTP on the TLS port: %d %s", res.StatusCode, b)
		}
		res.Body.Close()
	}
	cancel()
	stop()
	if _, err := c.Do(req); err == nil {
		t.Error("the API still answers after it stopped")
	}
}

// brokenMinter fails every mint.
type brokenMinter struct{ Minter }

func (brokenMinter) Mint(user, host string, at time.Time, nonce string) (string, error) {
	return "", errors.New("verifier: no such host")
}

// TestMintFails: a minter that fails gives 500 and no token, and nothing
// is counted as minted.
func TestMintFails(t *testing.T) {
	e := newEnv(t, testConfig())
	e.s.o.Minter = func() Minter { return brokenMinter{e.v} }
	res, m := e.do("POST", "/v1/tokens", "127.0.0.1:1", bearer(keyA), `{"jid":"alice@example.org"}`)
	if res.StatusCode != 500 || m["token"] != "" || m["error"] == "" {
		t.Errorf("%d %v, want 500 and an error", res.StatusCode, m)
	}
	if n := testutil.ToFloat64(e.s.metrics.mints); n != 0 {
		t.Errorf("tokenauthd_tokens_minted_total = %v, want 0", n)
	}
}
