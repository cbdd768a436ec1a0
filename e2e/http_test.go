package e2e

// The HTTP API of `tokenauthd serve` ([http]) through the built binary:
// every status, the limit, TLS refused off loopback, the Unix socket,
// reload, metrics, and the tokens it mints accepted once by the daemon.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
)

const (
	apiKey      = "webapp-key-7f3e9c1d5b2a8e4f6c0d9a1b"
	apiKeyNew   = "webapp-key-rotated-0c8d2e4f6a1b3c5d"
	apiProxy    = "127.0.0.2"
	apiUserHead = "X-Forwarded-User"
)

// apiClient asks the API from a given local address (the trusted proxy's,
// or another).
type apiClient struct {
	base string
	c    *http.Client
}

func newAPIClient(addr, from string) *apiClient {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return &apiClient{base: "http://" + addr, c: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}}}}
}

// unixAPIClient asks the API on a Unix socket.
func unixAPIClient(sock string) *apiClient {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &apiClient{base: "http://tokenauthd", c: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		}}}}
}

// do sends a request and returns its status and JSON body; it checks the
// headers every answer carries.
func (a *apiClient) do(t testing.TB, method, path string, header map[string]string, body string) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := a.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Errorf("%s %s: %d, not JSON: %q", method, path, res.StatusCode, b)
	}
	if res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s %s: headers %v", method, path, res.Header)
	}
	return res.StatusCode, m
}

func (a *apiClient) mint(t testing.TB, key, jid string) (int, map[string]string) {
	t.Helper()
	return a.do(t, "POST", "/v1/tokens", map[string]string{"Authorization": "Bearer " + key}, `{"jid":"`+jid+`"}`)
}

func (a *apiClient) credentials(t testing.TB, user string) (int, map[string]string) {
	t.Helper()
	h := map[string]string{}
	if user != "" {
		h[apiUserHead] = user
	}
	return a.do(t, "GET", "/v1/credentials", h, "")
}

// writeKey writes an application's key file (owner-only, as a secret).
func writeKey(t testing.TB, dir, name, key string) string {
	t.Helper()
	return fixture.WriteFile(t, filepath.Join(dir, name), key+"\n")
}

// httpSection is an [http] section on listen, with the app "webapp" (key
// in keyFile, for fixture.Host) and the credentials endpoint.
func httpSection(listen, keyFile string, perMinute int, proxies string) string {
	return fmt.Sprintf("[http]\nlisten = %q\nper_user_per_minute = %d\n[http.apps.\"webapp\"]\nkey_file = %q\nhosts = [%q]\n"+
		"[http.credentials]\nhost = %q\n%s", listen, perMinute, keyFile, fixture.Host, fixture.Host, proxies)
}

// askDaemon asks the daemon at sock one generic request for
// user@fixture.Host.
func askDaemon(t testing.TB, sock, command, user, token string) bool {
	t.Helper()
	return askDaemonHost(t, sock, command, user, fixture.Host, token)
}

// askDaemonHost asks the daemon at sock one generic request.
func askDaemonHost(t testing.TB, sock, command, user, host, token string) bool {
	t.Helper()
	ok, err := protocol.Query(context.Background(), "unix", sock, protocol.Generic,
		protocol.Request{Command: command, User: user, Server: host, Password: token})
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestServeHTTPAPI: the API of the built binary on loopback TCP answers
// each status, mints tokens the daemon accepts once, holds one JID to
// per_user_per_minute, reloads its keys on SIGHUP, counts in /metrics and
// never logs a token or a key.
func TestServeHTTPAPI(t *testing.T) {
	dir := t.TempDir()
	keyFile := writeKey(t, dir, "webapp.key", apiKey)
	port, metricsPort := fixture.FreePort(t), fixture.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	extra := fmt.Sprintf("[metrics]\nlisten = \"127.0.0.1:%d\"\n", metricsPort) +
		httpSection(addr, keyFile, 4, "trusted_proxies = [\""+apiProxy+"/32\"]\n")
	cfg := fixture.WriteConfig(t, dir, extra)
	sock := filepath.Join(dir, "d.sock")
	p := startServe(t, cfg, sock)
	fixture.WaitPort(t, port, 10*time.Second)
	app, proxy, other := newAPIClient(addr, ""), newAPIClient(addr, apiProxy), newAPIClient(addr, "127.0.0.1")

	tokens := apiStatuses(t, app, proxy, other)
	// Each minted token logs in once, through the daemon's socket.
	for i, tok := range tokens {
		user := "alice"
		if i == 2 {
			user = "bob"
		}
		if !askDaemon(t, sock, protocol.CmdAuth, user, tok) {
			t.Errorf("token %d is refused by the daemon", i)
		}
		if askDaemon(t, sock, protocol.CmdAuth, user, tok) {
			t.Errorf("token %d is accepted twice", i)
		}
	}
	checkAPIMetrics(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	// SIGHUP re-reads the key file: the old key is refused, the new one
	// mints.
	fixture.WriteFile(t, keyFile, apiKeyNew+"\n")
	p.hup(t)
	if code, _ := app.mint(t, apiKey, "carol@example.org"); code != 401 {
		t.Errorf("the old key after a reload: %d, want 401", code)
	}
	if code, _ := app.mint(t, apiKeyNew, "carol@example.org"); code != 200 {
		t.Errorf("the new key after a reload: %d, want 200", code)
	}
	log := p.log()
	if n := strings.Count(log, "http: token minted"); n != 6 {
		t.Errorf("%d mints logged, want 6:\n%s", n, log)
	}
	for _, secret := range append(tokens, apiKey, apiKeyNew) {
		if _, sig, _ := strings.Cut(secret, " "); strings.Contains(log, secret) || sig != "" && strings.Contains(log, sig) {
			t.Errorf("the log holds a token or a key:\n%s", log)
		}
	}
	if code := p.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("serve exited %d on SIGTERM, want 0", code)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the HTTP API still listens after the daemon stopped")
	}
}

// apiStatuses asks the API each of its answers, as an application (app),
// the trusted proxy and another local address, and returns the tokens
// minted: alice's 4 (the limit) and bob's, in order.
func apiStatuses(t *testing.T, app, proxy, other *apiClient) []string {
	t.Helper()
	var tokens []string
	for _, tt := range []struct {
		name string
		ask  func() (int, map[string]string)
		code int
		jid  string
	}{
		{"mint", func() (int, map[string]string) { return app.mint(t, apiKey, "alice@example.org") }, 200, "alice@example.org"},
		{"mint folded", func() (int, map[string]string) { return app.mint(t, apiKey, "Alice@EXAMPLE.org") }, 200, "alice@example.org"},
		{"wrong key", func() (int, map[string]string) { return app.mint(t, apiKey[:len(apiKey)-1]+"X", "alice@example.org") }, 401, ""},
		{"no key", func() (int, map[string]string) {
			return app.do(t, "POST", "/v1/tokens", nil, `{"jid":"alice@example.org"}`)
		}, 401, ""},
		{"other host", func() (int, map[string]string) { return app.mint(t, apiKey, "alice@other.example") }, 403, ""},
		{"bad jid", func() (int, map[string]string) { return app.mint(t, apiKey, "alice") }, 400, ""},
		{"huge body", func() (int, map[string]string) {
			return app.do(t, "POST", "/v1/tokens", map[string]string{"Authorization": "Bearer " + apiKey}, strings.Repeat(" ", 1<<20))
		}, 413, ""},
		{"credentials", func() (int, map[string]string) { return proxy.credentials(t, "Bob") }, 200, "bob@example.org"},
		{"untrusted peer", func() (int, map[string]string) { return other.credentials(t, "bob") }, 403, ""},
		{"no user", func() (int, map[string]string) { return proxy.credentials(t, "") }, 401, ""},
		{"bad user", func() (int, map[string]string) { return proxy.credentials(t, "bob@example.org") }, 400, ""},
		// A client's header and the proxy's folded into one line, as a
		// proxy that merges repeated headers does: not a name to trust.
		{"merged header", func() (int, map[string]string) { return proxy.credentials(t, "mallory,bob") }, 400, ""},
		{"get tokens", func() (int, map[string]string) { return app.do(t, "GET", "/v1/tokens", nil, "") }, 405, ""},
		{"unknown", func() (int, map[string]string) { return app.do(t, "GET", "/", nil, "") }, 404, ""},
		// Alice's third and fourth token this minute, then the limit.
		{"mint 3", func() (int, map[string]string) { return proxy.credentials(t, "alice") }, 200, "alice@example.org"},
		{"mint 4", func() (int, map[string]string) { return app.mint(t, apiKey, "alice@example.org") }, 200, "alice@example.org"},
		{"limit", func() (int, map[string]string) { return proxy.credentials(t, "alice") }, 429, ""},
	} {
		code, m := tt.ask()
		if code != tt.code || m["jid"] != tt.jid || (code == 200) == (m["error"] != "") {
			t.Errorf("%s: %d %v, want %d for %q", tt.name, code, m, tt.code, tt.jid)
		}
		if tok := m["token"] + m["password"]; code == 200 {
			tokens = append(tokens, tok)
		}
	}
	return tokens
}

// checkAPIMetrics checks the counts TestServeHTTPAPI's requests leave in
// /metrics at url.
func checkAPIMetrics(t *testing.T, url string) {
	t.Helper()
	m := scrape(t, url)
	for series, want := range map[string]float64{
		`tokenauthd_tokens_minted_total`:                                           5,
		`tokenauthd_http_requests_total{code="200",endpoint="tokens"}`:             3,
		`tokenauthd_http_requests_total{code="429",endpoint="credentials"}`:        1,
		`tokenauthd_http_requests_total{code="403",endpoint="credentials"}`:        1,
		`tokenauthd_http_requests_total{code="413",endpoint="tokens"}`:             1,
		`tokenauthd_http_requests_total{code="500",endpoint="tokens"}`:             0,
		`tokenauthd_requests_total{command="auth",reason="accepted",result="yes"}`: 5,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
}

// TestServeHTTPUnixSocket: on listen = "unix:PATH" the socket is made with
// mode 0660, its mode decides who connects, and no trusted proxy is asked.
func TestServeHTTPUnixSocket(t *testing.T) {
	dir := t.TempDir()
	httpSock := filepath.Join(dir, "http.sock")
	keyFile := writeKey(t, dir, "webapp.key", apiKey)
	p := startServeWith(t, httpSection("unix:"+httpSock, keyFile, 60, ""), filepath.Join(dir, "d.sock"))
	fi, err := os.Stat(httpSock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("%s: mode %v, want a socket of mode 0660", httpSock, fi.Mode())
	}
	c := unixAPIClient(httpSock)
	if code, m := c.credentials(t, "Dave"); code != 200 || m["jid"] != "dave@example.org" {
		t.Errorf("credentials over the Unix socket: %d %v", code, m)
	} else if !askDaemon(t, p.sock, protocol.CmdAuth, "dave", m["password"]) {
		t.Error("the daemon refuses the password")
	}
	if code, _ := c.credentials(t, ""); code != 401 {
		t.Errorf("no user over the Unix socket: %d, want 401", code)
	}
	if code, _ := c.mint(t, apiKey, "erin@example.org"); code != 200 {
		t.Errorf("mint over the Unix socket: %d, want 200", code)
	}
}

// TestServeHTTPRefusedAtStart: serve refuses to start, with status 1 and a
// line that says why, on a public address without TLS; with TLS it serves.
func TestServeHTTPRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	keyFile := writeKey(t, dir, "webapp.key", apiKey)
	port := fixture.FreePort(t)
	for _, listen := range []string{fmt.Sprintf("0.0.0.0:%d", port), fmt.Sprintf(":%d", port), fmt.Sprintf("192.0.2.1:%d", port)} {
		cfg := fixture.WriteConfig(t, t.TempDir(), httpSection(listen, keyFile, 60, "trusted_proxies = [\"127.0.0.2\"]\n"))
		cmd := exec.Command(fixture.Binary(t), "serve", "-config", cfg, "-socket", filepath.Join(dir, "d.sock"))
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "tls_cert_file") {
			t.Errorf("listen %q without TLS: %v\n%s", listen, err, out)
		}
	}
	fixture.SelfSigned(t, dir)
	tls := fmt.Sprintf("tls_cert_file = %q\ntls_key_file = %q\n", filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	cfg := fixture.WriteConfig(t, t.TempDir(), strings.Replace(httpSection(fmt.Sprintf("0.0.0.0:%d", port), keyFile, 60, "trusted_proxies = [\"127.0.0.2\"]\n"), "[http.apps", tls+"[http.apps", 1))
	p := startServe(t, cfg, filepath.Join(dir, "d2.sock"))
	fixture.WaitPort(t, port, 10*time.Second)
	// Plain HTTP gets nothing from a TLS listener.
	if res, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/tokens", port), "application/json", strings.NewReader(`{"jid":"a@example.org"}`)); err == nil {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Errorf("plain HTTP on the TLS port: %d %s", res.StatusCode, b)
		}
	}
	if !strings.Contains(p.log(), "tls=true") {
		t.Errorf("serve does not say it serves TLS:\n%s", p.log())
	}
}
