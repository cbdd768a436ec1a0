package e2e

// Web chat in a real browser: Converse.js 14 in Debian's headless
// Chromium, logged in with the single-use tokens the daemon's HTTP API
// hands it through a site's login proxy (credentials_url), against the
// peer set's Prosody (WebSocket and BOSH, tokenauthd's module) and
// ejabberd (WebSocket, the relay).

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/fixture/peers"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// Converse.js as the npm registry serves it, pinned by version and by the
// integrity npm records for it (sha512 of the tarball).
const (
	converseVersion   = "14.0.0"
	converseIntegrity = "sha512-LFUg030jDalV47vI/vyVPqYPZfJYXFbubq8v0cFDe2zXNeeGEk3Up0Fj/WTzT6t+6do+cAIToy73eAj7RNDj2Q=="
	// webUser is the user the site's login proxy says is logged in.
	webUser = "Alice"
)

// converseDist returns a directory holding Converse.js's dist/ files. The
// tarball is fetched once with `npm pack` into the peers' cache
// ($TOKENAUTHD_PEERS_DIR, /var/cache/tokenauthd-peers), and checked against
// converseIntegrity every time it is used.
func converseDist(t testing.TB) string {
	t.Helper()
	fixture.RequirePeer(t, "/usr/bin/npm")
	cache := os.Getenv("TOKENAUTHD_PEERS_DIR")
	if cache == "" {
		cache = "/var/cache/tokenauthd-peers"
	}
	cache = filepath.Join(cache, "npm")
	tgz := filepath.Join(cache, "converse.js-"+converseVersion+".tgz")
	if _, err := os.Stat(tgz); err != nil {
		if err := os.MkdirAll(cache, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("npm", "pack", "--silent", "--pack-destination", cache, "converse.js@"+converseVersion)
		cmd.Env = append(os.Environ(), "npm_config_update_notifier=false", "npm_config_fund=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm pack converse.js@%s: %v\n%s", converseVersion, err, out)
		}
	}
	b, err := os.ReadFile(tgz)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(b)
	if got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:]); got != converseIntegrity {
		t.Fatalf("%s: integrity %s, want %s: remove it to fetch it again", tgz, got, converseIntegrity)
	}
	dir := t.TempDir()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name, ok := strings.CutPrefix(h.Name, "package/dist/")
		if !ok || h.Typeflag != tar.TypeReg || strings.HasSuffix(name, ".map") || !filepath.IsLocal(name) {
			continue
		}
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(f, io.LimitReader(tr, 64<<20))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "converse.min.js")); err != nil {
		t.Fatalf("the tarball has no dist/converse.min.js: %v", err)
	}
	return dir
}

// browser is a headless Chromium driven by testdata/converse.py.
type browser struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	mu  sync.Mutex
}

// startBrowser starts Chromium with a throwaway profile; it quits at the
// end of the test (its driver's stdin closed, then killed by PID).
func startBrowser(t testing.TB) *browser {
	t.Helper()
	fixture.RequirePeer(t, fixture.DebianPython, "/usr/bin/chromium", "/usr/bin/chromedriver", "python:selenium")
	profile := t.TempDir()
	b := &browser{cmd: exec.Command(fixture.DebianPython, "testdata/converse.py", profile)}
	var err error
	if b.in, err = b.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	b.cmd.Stderr = &stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		b.in.Close()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Errorf("the browser did not quit within 15 s: killing its driver")
			b.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("browser driver's stderr:\n%s", lastLines(stderr.String(), 30))
		}
	})
	b.out = bufio.NewScanner(stdout)
	b.out.Buffer(make([]byte, 1<<20), 1<<20)
	if !b.out.Scan() || !strings.HasPrefix(b.out.Text(), "ready") {
		t.Fatalf("the browser did not start: %q\n%s", b.out.Text(), stderr.String())
	}
	t.Logf("browser: %s", b.out.Text())
	return b
}

// ask sends one command and returns its answer line.
func (b *browser) ask(t testing.TB, cmd string) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := io.WriteString(b.in, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
	if !b.out.Scan() {
		t.Fatalf("the browser driver ended: %v", b.out.Err())
	}
	return b.out.Text()
}

// pageEvent is what the page's plugin records: connected, reconnected,
// disconnected, with the bound JID.
type pageEvent struct {
	Event string `json:"event"`
	JID   string `json:"jid"`
}

// waitEvents polls the page's events until enough of kind have come, or
// fails after a minute.
func (b *browser) waitEvents(t testing.TB, what string, done func([]pageEvent) bool) []pageEvent {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ev []pageEvent
		line := b.ask(t, "events")
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("events: %q", line)
		}
		if done(ev) {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60 s; the page's events: %+v\nits console: %s", what, ev, b.ask(t, "console"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// count counts the events of one kind.
func count(ev []pageEvent, kind string) int {
	n := 0
	for _, e := range ev {
		if e.Event == kind {
			n++
		}
	}
	return n
}

// webApp is the site: its page with Converse.js, Converse.js's files, and
// its login proxy, which answers /xmpp/credentials from the daemon's GET
// /v1/credentials with the logged-in user in the user header, overwriting
// any the browser sent. It keeps every password it handed out.
type webApp struct {
	url string
	mu  sync.Mutex
	// passwords are the passwords handed out, in order.
	passwords []string
}

// startWebApp serves the site on a free port of 127.0.0.1. upstream is
// the transport to the daemon's HTTP API; xmpp maps a path of the site
// ("/xmpp-websocket", "/http-bind") to the XMPP server's HTTP address, as
// the site's web server would proxy it.
func startWebApp(t testing.TB, dist string, upstream http.RoundTripper, xmpp map[string]string) *webApp {
	t.Helper()
	w := &webApp{}
	mux := http.NewServeMux()
	mux.Handle("/converse/", http.StripPrefix("/converse/", http.FileServer(http.Dir(dist))))
	mux.HandleFunc("/chat", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(rw, conversePage(r.URL.Query().Get("transport")))
	})
	mux.HandleFunc("/xmpp/credentials", func(rw http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "GET", "http://tokenauthd/v1/credentials", nil)
		// The site's session says who is logged in: never the client.
		req.Header.Set(apiUserHead, webUser)
		res, err := upstream.RoundTrip(req)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		var c struct{ Password string }
		if json.Unmarshal(body, &c) == nil && c.Password != "" {
			w.mu.Lock()
			w.passwords = append(w.passwords, c.Password)
			w.mu.Unlock()
		}
		rw.Header().Set("Content-Type", res.Header.Get("Content-Type"))
		rw.Header().Set("Cache-Control", "no-store")
		rw.WriteHeader(res.StatusCode)
		rw.Write(body)
	})
	for path, backend := range xmpp {
		u, err := url.Parse(backend)
		if err != nil {
			t.Fatal(err)
		}
		rp := &httputil.ReverseProxy{
			Rewrite: func(r *httputil.ProxyRequest) {
				r.SetURL(u)
				r.SetXForwarded()
			},
			ErrorLog: log.New(fixture.Writer(t), "site's proxy: ", 0),
		}
		mux.Handle(path, rp)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	w.url = "http://" + l.Addr().String()
	return w
}

// handedOut returns the passwords handed out so far.
func (w *webApp) handedOut() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.passwords...)
}

// conversePage is the site's chat page: Converse.js logging in with
// credentials_url over WebSocket or BOSH (transport), and a plugin that
// records Converse's connection events for the test.
func conversePage(transport string) string {
	endpoint := `websocket_url: location.origin.replace(/^http/, "ws") + "/xmpp-websocket"`
	if transport == "bosh" {
		endpoint = `bosh_service_url: location.origin + "/http-bind"`
	}
	return `<!doctype html>
<html><head><meta charset="utf-8"><title>chat</title>
<link rel="stylesheet" href="/converse/converse.min.css">
</head><body>
<script type="module">
import converse from "/converse/converse.min.js";
window.tokenauthdEvents = [];
converse.plugins.add("tokenauthd-test", {
  initialize() {
    const api = this._converse.api;
    const note = (event) => window.tokenauthdEvents.push({event, jid: api.user.jid() || ""});
    api.listen.on("connected", () => note("connected"));
    api.listen.on("reconnected", () => note("reconnected"));
    api.listen.on("disconnected", () => note("disconnected"));
  },
});
converse.initialize({
  whitelisted_plugins: ["tokenauthd-test"],
  assets_path: "/converse/",
  authentication: "login",
  auto_login: true,
  auto_reconnect: true,
  credentials_url: "/xmpp/credentials",
  ` + endpoint + `,
  discover_connection_methods: false,
  view_mode: "fullscreen",
  play_sounds: false,
  show_desktop_notifications: false,
});
</script></body></html>
`
}

// usedPasswords returns the handed-out passwords the daemon has recorded
// as used (seen): those Converse.js logged in with.
func usedPasswords(t testing.TB, sock, user string, handed []string) []string {
	t.Helper()
	var used []string
	for _, pw := range handed {
		if askDaemonHost(t, sock, protocol.CmdSeen, user, "localhost", pw) {
			used = append(used, pw)
		}
	}
	return used
}

// replaysRefused logs in with each password as another client would
// (slixmpp, SASL PLAIN, over c2s) and fails the test if one is accepted.
func replaysRefused(t *testing.T, jid string, port int, passwords []string) {
	t.Helper()
	for i, pw := range passwords {
		if xmppLogin(t, jid, pw, port, "PLAIN") {
			t.Errorf("password %d of %d Converse.js used was accepted again from another client", i+1, len(passwords))
		}
	}
}

// startWebProsody starts the peer set's Prosody as startProsody does, with
// its HTTP server on a free port of 127.0.0.1 serving WebSocket
// (/xmpp-websocket) and BOSH (/http-bind). restart stops it and starts it
// again on the same ports.
func startWebProsody(t *testing.T, dir, sock string) (p *prosodyServer, httpPort int, restart func()) {
	t.Helper()
	set := peers.Get(t)
	fixture.RequirePeer(t, set.ProsodyBin)
	cfgPath, p := writeProsody(t, dir, sock)
	httpPort = fixture.FreePort(t)
	cfg := readFile(t, cfgPath)
	cfg = strings.Replace(cfg, `"ping" }`, `"ping", "websocket", "bosh" }`, 1)
	cfg = strings.Replace(cfg, "VirtualHost", fmt.Sprintf(`http_ports = { %d }
http_interfaces = { "127.0.0.1" }
https_ports = { }
consider_websocket_secure = true
consider_bosh_secure = true
VirtualHost`, httpPort), 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var stop func()
	start := func() {
		p.cmd = exec.Command(set.ProsodyBin, "--config", cfgPath)
		stop, p.exited = startCmd(t, p.cmd, filepath.Join(dir, "prosody.console"))
		fixture.WaitPort(t, p.port, 15*time.Second)
		fixture.WaitPort(t, httpPort, 15*time.Second)
	}
	start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prosody log (tail):\n%s", lastLines(readFile(t, p.log), 80))
		}
	})
	if err := set.CheckProsodyLog(readFile(t, p.log)); err != nil {
		t.Fatal(err)
	}
	return p, httpPort, func() { stop(); start() }
}

// TestWebchatProsody: Converse.js in Chromium, its credentials from the
// daemon's HTTP API on a Unix socket behind the site's login proxy, logs in
// to Prosody with tokenauthd's module over WebSocket, reconnects with a
// new token when Prosody restarts, and logs in over BOSH; nothing is
// refused, and each token it used is refused to another client.
func TestWebchatProsody(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:slixmpp")
	dist := converseDist(t)
	b := startBrowser(t)
	dir := t.TempDir()
	sock, httpSock := filepath.Join(dir, "d.sock"), filepath.Join(dir, "http.sock")
	cfg := fixture.WriteFile(t, filepath.Join(dir, "config.toml"), prosodyConfig()+
		fmt.Sprintf("[http]\nlisten = \"unix:%s\"\n[http.credentials]\nhost = \"localhost\"\n", httpSock))
	d := startServe(t, cfg, sock)
	p, httpPort, restart := startWebProsody(t, dir, sock)
	prosodyHTTP := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	app := startWebApp(t, dist, unixAPIClient(httpSock).c.Transport,
		map[string]string{"/xmpp-websocket": prosodyHTTP, "/http-bind": prosodyHTTP})
	const jid = "alice@localhost"

	// WebSocket: logged in, as the page and Prosody say.
	b.ask(t, "open "+app.url+"/chat?transport=websocket")
	ev := b.waitEvents(t, "login over WebSocket", func(ev []pageEvent) bool { return count(ev, "connected") > 0 })
	if !strings.HasPrefix(ev[0].JID, jid+"/") {
		t.Errorf("the page is connected as %q, want %s/...", ev[0].JID, jid)
	}
	fixture.WaitFor(t, "Prosody's log of the login", func() bool {
		return strings.Contains(readFile(t, p.log), "Authenticated as "+jid)
	})
	// Prosody restarted: Converse.js reconnects with a new token.
	restart()
	b.waitEvents(t, "reconnection after Prosody's restart", func(ev []pageEvent) bool {
		return count(ev, "reconnected") > 0 || count(ev, "connected") > 1
	})
	// BOSH: the page loaded again on the other transport.
	b.ask(t, "open "+app.url+"/chat?transport=bosh")
	b.waitEvents(t, "login over BOSH", func(ev []pageEvent) bool { return count(ev, "connected") > 0 })
	p.alive(t)
	// Prosody saw each of the three logins: the first, after its restart,
	// over BOSH.
	fixture.WaitFor(t, "Prosody's log of three logins", func() bool {
		return strings.Count(readFile(t, p.log), "Authenticated as "+jid) >= 3
	})

	// Nothing was refused: every login Converse.js tried was its first
	// use of a fresh token.
	if strings.Contains(d.log(), "reason=") {
		t.Errorf("the daemon refused a login:\n%s", d.log())
	}
	used := usedPasswords(t, sock, "alice", app.handedOut())
	t.Logf("%d passwords handed out, %d used", len(app.handedOut()), len(used))
	if len(used) < 3 {
		t.Errorf("%d of the %d passwords handed out were used, want at least 3 (WebSocket, after the restart, BOSH)", len(used), len(app.handedOut()))
	}
	replaysRefused(t, jid, p.port, used)
}

// TestWebchatEjabberd: Converse.js in Chromium, its credentials from the
// daemon's HTTP API on loopback TCP, asked by the site's login proxy from
// a trusted address, logs in to ejabberd over WebSocket through the relay,
// and reconnects with a new token when ejabberd restarts; nothing is
// refused, and each token it used is refused to another client.
func TestWebchatEjabberd(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:slixmpp")
	dist := converseDist(t)
	b := startBrowser(t)
	dir := ejabberdDir(t)
	sock := filepath.Join(dir, "run", "d.sock")
	api := fmt.Sprintf("127.0.0.1:%d", fixture.FreePort(t))
	cfg := fixture.WriteFile(t, filepath.Join(t.TempDir(), "config.toml"), e2eConfig()+"[daemon]\nsocket_group = \"ejabberd\"\n"+
		fmt.Sprintf("[http]\nlisten = %q\n[http.credentials]\nhost = \"localhost\"\ntrusted_proxies = [\"%s\"]\n", api, apiProxy))
	d := startServe(t, cfg, sock)
	relay, relayLog := stageBinary(t, dir), filepath.Join(dir, "relay.log")
	chownEjabberd(t, dir)
	wsPort := fixture.FreePort(t)
	prog := fmt.Sprintf("%s connect -protocol ejabberd -socket %s 2>>%s", relay, sock, relayLog)
	e := writeEjabberd(t, prog, 1, fmt.Sprintf("  -\n    port: %d\n    ip: \"127.0.0.1\"\n    module: ejabberd_http\n    request_handlers:\n      /xmpp-websocket: ejabberd_http_ws", wsPort))
	port := runEjabberd(t, e, prog)
	app := startWebApp(t, dist, newAPIClient(api, apiProxy).c.Transport,
		map[string]string{"/xmpp-websocket": fmt.Sprintf("http://127.0.0.1:%d", wsPort)})
	const jid = "alice@localhost"
	ejabberdLog := func() string { return readFile(t, filepath.Join(e.dir, "logs", "ejabberd.log")) }

	b.ask(t, "open "+app.url+"/chat?transport=websocket")
	ev := b.waitEvents(t, "login over WebSocket", func(ev []pageEvent) bool { return count(ev, "connected") > 0 })
	if !strings.HasPrefix(ev[0].JID, jid+"/") {
		t.Errorf("the page is connected as %q, want %s/...", ev[0].JID, jid)
	}
	fixture.WaitFor(t, "ejabberd's log of the login", func() bool {
		return strings.Contains(ejabberdLog(), "authentication for "+jid)
	})
	// ejabberd restarted: Converse.js reconnects with a new token.
	if out, err := e.ctl(peers.Get(t), "restart").CombinedOutput(); err != nil {
		t.Fatalf("ejabberdctl restart: %v\n%s", err, out)
	}
	b.waitEvents(t, "reconnection after ejabberd's restart", func(ev []pageEvent) bool {
		return count(ev, "reconnected") > 0 || count(ev, "connected") > 1
	})
	fixture.WaitFor(t, "ejabberd's log of the second login", func() bool {
		return strings.Count(ejabberdLog(), "authentication for "+jid) >= 2
	})
	if strings.Contains(d.log(), "reason=") {
		t.Errorf("the daemon refused a login:\n%s", d.log())
	}
	used := usedPasswords(t, sock, "alice", app.handedOut())
	t.Logf("%d passwords handed out, %d used", len(app.handedOut()), len(used))
	if len(used) < 2 {
		t.Errorf("%d of the %d passwords handed out were used, want at least 2 (WebSocket, after the restart)", len(used), len(app.handedOut()))
	}
	replaysRefused(t, jid, port, used)
}
