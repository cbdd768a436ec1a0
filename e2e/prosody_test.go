package e2e

// End-to-end tests of prosody/mod_auth_tokenauthd.lua: the peer set's
// Prosody (Debian 12's 0.12 or Debian 13's 13.0: peers.Get) with the module
// from this tree on its plugin path, `tokenauthd serve` on a socket in the
// test's directory, slixmpp as the client.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/fixture/peers"
)

const (
	// moduleTimeout is tokenauthd_timeout's default, which the tests use.
	moduleTimeout = 2 * time.Second
	// Secrets of the test's virtual host "localhost".
	prosodySeed   = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	prosodySecret = "prosody-e2e-secret"
)

// prosodyConfig is the daemon's configuration of the host "localhost" for
// Prosody, with its secrets.
func prosodyConfig() string {
	return fmt.Sprintf("[hosts.\"localhost\"]\ntoken_secret = %q\notp_seed = %q\n", prosodySecret, prosodySeed)
}

// stopProcess ends a process started by the test: SIGTERM, then SIGKILL if
// it is still there after a while.
func stopProcess(cmd *exec.Cmd, done <-chan struct{}) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// startCmd starts cmd with its output in logPath and returns a function
// that stops it (idempotent, also run at cleanup) and a channel closed
// when it has exited.
func startCmd(t testing.TB, cmd *exec.Cmd, logPath string) (stop func(), exited <-chan struct{}) {
	t.Helper()
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(done)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { stopProcess(cmd, done) }) }
	t.Cleanup(stop)
	return stop, done
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// prosodyServer is a Prosody started by a test.
type prosodyServer struct {
	port   int
	log    string
	cmd    *exec.Cmd
	exited <-chan struct{}
}

// writeProsody writes dir/prosody.cfg.lua: Prosody on a free port of
// 127.0.0.1 for the host "localhost", with the module of this tree
// (copied into dir/plugins) as its authentication provider, talking to the
// daemon at sock. It returns the file's path and the server to be
// started on it, its port and log set.
func writeProsody(t testing.TB, dir, sock string) (cfgPath string, p *prosodyServer) {
	t.Helper()
	module, err := os.ReadFile("../prosody/mod_auth_tokenauthd.lua")
	if err != nil {
		t.Fatal(err)
	}
	plugins := filepath.Join(dir, "plugins")
	for _, d := range []string{"data", "plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(plugins, "mod_auth_tokenauthd.lua"), module, 0o644); err != nil {
		t.Fatal(err)
	}
	p = &prosodyServer{port: fixture.FreePort(t), log: filepath.Join(dir, "prosody.log")}
	cfg := fmt.Sprintf(`-- written by the test
run_as_root = true
pidfile = %[1]q
data_path = %[2]q
plugin_paths = { %[3]q }
log = { { levels = { min = "debug" }, to = "file", filename = %[4]q } }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { %[5]d }
c2s_direct_tls_ports = { }
modules_enabled = { "saslauth", "roster", "disco", "ping" }
modules_disabled = { "s2s", "offline" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "tokenauthd"
tokenauthd_socket = %[6]q
VirtualHost "localhost"
`, filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data"), plugins, p.log, p.port, sock)
	cfgPath = filepath.Join(dir, "prosody.cfg.lua")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, p
}

// startProsody runs the peer set's Prosody on writeProsody's configuration
// and checks by its log that it is the set's version.
func startProsody(t *testing.T, dir, sock string) *prosodyServer {
	t.Helper()
	set := peers.Get(t)
	fixture.RequirePeer(t, set.ProsodyBin)
	cfgPath, p := writeProsody(t, dir, sock)
	p.cmd = exec.Command(set.ProsodyBin, "--config", cfgPath)
	_, p.exited = startCmd(t, p.cmd, filepath.Join(dir, "prosody.console"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prosody log (tail):\n%s", lastLines(readFile(t, p.log), 60))
		}
	})
	fixture.WaitPort(t, p.port, 15*time.Second)
	// Prosody logs its welcome, with its version, before it listens.
	if err := set.CheckProsodyLog(readFile(t, p.log)); err != nil {
		t.Fatal(err)
	}
	return p
}

// alive fails the test if Prosody has exited.
func (p *prosodyServer) alive(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("prosody exited")
	default:
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tryLogin is xmppLogin for other goroutines: it reports instead of
// failing the test. A refusal comes with its SASL condition.
func tryLogin(jid, password string, port int, mech string) (ok bool, condition string, err error) {
	out, err := exec.Command(fixture.DebianPython, "testdata/login.py", jid, password, "127.0.0.1", strconv.Itoa(port), mech).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, "", nil
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		for _, l := range strings.Split(string(out), "\n") {
			if c, found := strings.CutPrefix(l, "failure: "); found {
				condition = c
			}
		}
		return false, condition, nil
	}
	return false, "", fmt.Errorf("login.py %s: %v\n%s", jid, err, out)
}

// silentDaemon accepts connections on a Unix socket and reads requests, but
// never answers: a daemon that hangs.
type silentDaemon struct {
	l      net.Listener
	lines  chan string   // every request line received
	closed chan struct{} // one value per connection its peer closed
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startSilentDaemon(t *testing.T, path string) *silentDaemon {
	t.Helper()
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	d := &silentDaemon{l: l, lines: make(chan string, 64), closed: make(chan struct{}, 64)}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			d.mu.Lock()
			d.conns = append(d.conns, c)
			d.mu.Unlock()
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if line != "" {
						d.lines <- line
					}
					if err != nil {
						if err == io.EOF {
							d.closed <- struct{}{}
						}
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(d.stop)
	return d
}

func (d *silentDaemon) stop() {
	d.l.Close()
	d.mu.Lock()
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
	d.mu.Unlock()
	d.wg.Wait()
}

// pinger is testdata/ping.py: a session logged in before the measurement.
type pinger struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func startPinger(t *testing.T, jid, password string, port int, seconds float64) *pinger {
	t.Helper()
	cmd := exec.Command(fixture.DebianPython, "testdata/ping.py", jid, password, "127.0.0.1", strconv.Itoa(port), fmt.Sprint(seconds))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := &pinger{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	if !p.out.Scan() || p.out.Text() != "ready" {
		_ = cmd.Wait()
		t.Fatalf("ping.py did not log in: %q %v\n%s", p.out.Text(), cmd.ProcessState, stderr.String())
	}
	return p
}

// measure starts the pings and returns their round trips.
func (p *pinger) measure(t *testing.T) []time.Duration {
	t.Helper()
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	var rtts []time.Duration
	for p.out.Scan() {
		switch s := p.out.Text(); s {
		case "done":
			return rtts
		case "lost":
			t.Errorf("a ping got no answer within 5 s")
		default:
			ms, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("ping.py printed %q", s)
			}
			rtts = append(rtts, time.Duration(ms*float64(time.Millisecond)))
		}
	}
	t.Fatalf("ping.py ended without \"done\": %v", p.out.Err())
	return nil
}

func TestProsodyModule(t *testing.T) {
	set := peers.Get(t)
	fixture.RequirePeer(t, set.ProsodyBin, fixture.DebianPython, "python:slixmpp", "python:pyotp")
	dir := t.TempDir()
	sock := filepath.Join(dir, "tokenauthd.sock")
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(prosodyConfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := startServe(t, cfgPath, sock)
	p := startProsody(t, dir, sock)

	var tokens []string // every token used: none may be logged
	token := func(jid string, at int64) string {
		tok := pyotpToken(t, prosodySeed, prosodySecret, jid, at, "")
		tokens = append(tokens, tok)
		return tok
	}
	login := func(name, jid, tok, mech string, want bool) {
		t.Helper()
		if got := xmppLogin(t, jid, tok, p.port, mech); got != want {
			t.Errorf("%s: login %s with %s = %v, want %v", name, jid, mech, got, want)
		}
	}

	plainTok := token("alice@localhost", 0)
	login("fresh token", "alice@localhost", plainTok, "PLAIN", true)
	login("fresh token", "alice@localhost", token("alice@localhost", 0), "X-TOKEN", true)
	login("same token again", "alice@localhost", plainTok, "PLAIN", false)
	login("same token again", "alice@localhost", plainTok, "X-TOKEN", false)
	login("another user's token", "alice@localhost", token("bob@localhost", 0), "PLAIN", false)
	login("stale token", "alice@localhost", token("alice@localhost", time.Now().Add(-10*time.Minute).Unix()), "X-TOKEN", false)
	login("not a token", "alice@localhost", "12345678 bm90IGEgc2lnbmF0dXJl", "PLAIN", false)

	// The daemon restarts while a login waits: the module reconnects by
	// itself and the login goes through; so do the next ones. (A login
	// already written when the daemon died is refused as unavailable, never
	// sent again: the module's unit tests cover that.)
	serve.stop()
	waiting := make(chan error, 1)
	tok := token("alice@localhost", 0)
	go func() {
		ok, cond, err := tryLogin("alice@localhost", tok, p.port, "X-TOKEN")
		if err == nil && !ok {
			err = fmt.Errorf("refused (%s)", cond)
		}
		waiting <- err
	}()
	time.Sleep(moduleTimeout / 4) // the login is waiting for the daemon
	serve = startServe(t, cfgPath, sock)
	if err := <-waiting; err != nil {
		t.Errorf("login while the daemon restarted: %v", err)
	}
	login("after a daemon restart", "alice@localhost", token("alice@localhost", 0), "PLAIN", true)
	p.alive(t)

	// A daemon that never answers: the login is refused after the
	// timeout, while an already logged-in session is served as usual.
	pinger := startPinger(t, "carol@localhost", token("carol@localhost", 0), p.port, 0.8)
	serve.stop()
	silent := startSilentDaemon(t, sock)
	hungTok := token("alice@localhost", 0)
	hung := make(chan error, 1)
	var hungAt time.Time
	go func() {
		// X-TOKEN can tell the client the truth: try again later.
		ok, cond, err := tryLogin("alice@localhost", hungTok, p.port, "X-TOKEN")
		if err == nil && (ok || cond != "temporary-auth-failure") {
			err = fmt.Errorf("accepted %v, condition %q", ok, cond)
		}
		hung <- err
	}()
	select {
	case line := <-silent.lines:
		hungAt = time.Now()
		// Prosody's (nodeprepped) username, the VirtualHost, the token.
		if want := "auth:alice:localhost:" + hungTok + "\n"; line != want {
			t.Errorf("the module sent %q, want %q", line, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the module sent nothing to the silent daemon")
	}
	rtts := pinger.measure(t)
	select {
	case err := <-hung:
		t.Fatalf("the login ended (%v) before the pings did: they did not overlap its wait", err)
	default:
	}
	if len(rtts) < 5 {
		t.Fatalf("only %d pings answered while the login waited", len(rtts))
	}
	slices.Sort(rtts)
	median, worst := rtts[len(rtts)/2], rtts[len(rtts)-1]
	t.Logf("%d pings while a login waited for a silent daemon: median %v, max %v", len(rtts), median, worst)
	// The feature itself: the event loop is not blocked by a waiting login.
	if median >= 100*time.Millisecond || worst >= moduleTimeout/2 {
		t.Errorf("pings while a login waited: median %v (want < 100ms), max %v (want < %v)", median, worst, moduleTimeout/2)
	}
	if err := <-hung; err != nil {
		t.Errorf("login with a silent daemon: %v, want refused with temporary-auth-failure", err)
	}
	if waited := time.Since(hungAt); waited < moduleTimeout*3/4 || waited > moduleTimeout+8*time.Second {
		t.Errorf("login with a silent daemon refused after %v, want about %v", waited, moduleTimeout)
	}
	// After the timeout the module closes that connection, so that a late
	// answer cannot be taken for the next request's.
	select {
	case <-silent.closed:
	case <-time.After(5 * time.Second):
		t.Errorf("the module kept the connection of the unanswered request open")
	}

	// The real daemon back: logins work again, Prosody untouched.
	silent.stop()
	serve = startServe(t, cfgPath, sock)
	login("after a silent daemon", "alice@localhost", token("alice@localhost", 0), "PLAIN", true)
	login("after a silent daemon", "alice@localhost", token("alice@localhost", 0), "X-TOKEN", true)
	p.alive(t)

	logs := readFile(t, p.log) + serve.log()
	for _, tok := range tokens {
		if strings.Contains(logs, tok) || strings.Contains(logs, strings.Fields(tok)[1]) {
			t.Errorf("a token appears in the logs")
			break
		}
	}
}

// TestProsodyModuleJWT: JWTs log in through a real Prosody, the module and
// the daemon once, with PLAIN and with X-TOKEN, and are refused the second
// time, with either; one is PyJWT's, as an application in Python mints
// it, the other `tokenauthd mint -jwt`'s.
func TestProsodyModuleJWT(t *testing.T) {
	set := peers.Get(t)
	fixture.RequirePeer(t, set.ProsodyBin, fixture.DebianPython, "python:slixmpp", "python:jwt", "python:cryptography")
	dir := t.TempDir()
	sock := filepath.Join(dir, "tokenauthd.sock")
	key := fixture.NewJWTKey(t, dir, "app-1")
	serve := startServe(t, fixture.WriteFile(t, filepath.Join(dir, "config.toml"), key.Section("localhost")), sock)
	p := startProsody(t, dir, sock)

	py, minted := pyJWT(t, key, "alice@localhost"), mintJWT(t, key, "alice@localhost")
	bobs := pyJWT(t, key, "bob@localhost")
	for _, l := range []struct {
		what, jwt, mech string
		want            bool
	}{
		{"PyJWT's JWT", py, "PLAIN", true},
		{"PyJWT's JWT again", py, "PLAIN", false},
		{"PyJWT's JWT again", py, "X-TOKEN", false},
		{"mint's JWT", minted, "X-TOKEN", true},
		{"mint's JWT again", minted, "X-TOKEN", false},
		{"mint's JWT again", minted, "PLAIN", false},
		{"another user's JWT", bobs, "PLAIN", false},
	} {
		if got := xmppLogin(t, "alice@localhost", l.jwt, p.port, l.mech); got != l.want {
			t.Errorf("%s with %s: logged in %v, want %v", l.what, l.mech, got, l.want)
		}
	}
	// Bob's JWT was not used up by the refusal as alice's.
	if !xmppLogin(t, "bob@localhost", bobs, p.port, "PLAIN") {
		t.Error("bob's JWT was refused after it was refused as alice's")
	}
	p.alive(t)

	log := serve.log()
	for reason, n := range map[string]int{"replayed": 4, "wrong_jid": 1} {
		if got := strings.Count(log, "reason="+reason+" "); got != n {
			t.Errorf("the daemon logged %d %s refusals, want %d:\n%s", got, reason, n, log)
		}
	}
	logs := readFile(t, p.log) + log
	for _, jwt := range []string{py, minted, bobs} {
		if strings.Contains(logs, jwt[strings.LastIndexByte(jwt, '.')+1:]) {
			t.Errorf("a JWT's signature appears in the logs")
		}
	}
}

// TestProsodyModuleUnit runs the module's unit tests
// (testdata/lua/mod_auth_tokenauthd_test.lua) with Prosody's Lua and the
// peer set's Prosody libraries: in-order answers, timeouts, reconnection,
// refused inputs and SASL, against a scripted daemon connection.
func TestProsodyModuleUnit(t *testing.T) {
	set := peers.Get(t)
	fixture.RequirePeer(t, "/usr/bin/lua5.4", filepath.Join(set.ProsodyLib, "util/async.lua"))
	if err := set.CheckProsodyLib(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/lua5.4", "testdata/lua/mod_auth_tokenauthd_test.lua",
		"../prosody/mod_auth_tokenauthd.lua", set.ProsodyLib).CombinedOutput()
	t.Logf("\n%s", out)
	if err != nil {
		t.Fatalf("the module's unit tests failed: %v", err)
	}
	if n := bytes.Count(out, []byte("\nok   ")) + 1; n < 10 || !bytes.HasPrefix(out, []byte("ok   ")) {
		t.Fatalf("only %d unit tests ran", n)
	}
	// The libraries came from the set's directory, not from another
	// Prosody on Lua's path.
	want := "\nutil.async from @" + filepath.Join(set.ProsodyLib, "util/async.lua") + "\n"
	if !bytes.Contains(out, []byte(want)) {
		t.Errorf("the unit tests did not say they loaded %q", strings.TrimSpace(want))
	}
}

// TestProsodyExampleConfig checks the Prosody guide's example configuration
// with the peer set's prosodyctl, and that the guide quotes it as it is.
func TestProsodyExampleConfig(t *testing.T) {
	set := peers.Get(t)
	fixture.RequirePeer(t, set.ProsodyctlBin)
	example, err := os.ReadFile("../prosody/example.prosody.cfg.lua")
	if err != nil {
		t.Fatal(err)
	}
	guide, err := os.ReadFile("../docs/prosody.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(guide, indent(example)) {
		t.Errorf("docs/prosody.md does not quote prosody/example.prosody.cfg.lua as it is")
	}
	for _, want := range []string{`authentication = "tokenauthd"`, `tokenauthd_socket = "/run/tokenauthd/tokenauthd.sock"`} {
		if !bytes.Contains(example, []byte(want)) {
			t.Errorf("the example configuration lacks %s", want)
		}
	}

	// prosodyctl 13's check config ends with advice that every
	// configuration without the optional features' settings gets.
	advice := map[string]bool{}
	if !strings.HasPrefix(set.ProsodyVersion, "0.") {
		advice["Some of your hosts may be missing features due to a lack of configuration."] = true
		advice["For more details, use the 'prosodyctl check features' command."] = true
	}
	var about string
	check := func(cfg []byte) (string, error) {
		// prosodyctl wants the file readable by the prosody user.
		dir, err := os.MkdirTemp("", "tokenauthd-prosodyctl-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "prosody.cfg.lua")
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		if about == "" {
			out, err := exec.Command(set.ProsodyctlBin, "--config", path, "about").CombinedOutput()
			if err != nil {
				t.Fatalf("prosodyctl about: %v\n%s", err, out)
			}
			about = string(out)
		}
		out, err := exec.Command(set.ProsodyctlBin, "--config", path, "check", "config").CombinedOutput()
		if err != nil {
			return string(out), err
		}
		// prosodyctl exits 0 even when it prints advice: only its
		// frame may be there.
		for _, l := range strings.Split(string(out), "\n") {
			l = strings.TrimSpace(l)
			switch {
			case l == "", strings.HasPrefix(l, "certmanager"), l == "Checking config...",
				strings.HasPrefix(l, "The following configuration files have been loaded"),
				strings.HasPrefix(l, "- "), l == "Done.", l == "All checks passed, congratulations!",
				advice[l]:
			default:
				return string(out), fmt.Errorf("prosodyctl says %q", l)
			}
		}
		return string(out), nil
	}
	if out, err := check(example); err != nil {
		t.Errorf("prosodyctl check config on the example: %v\n%s", err, out)
	}
	if err := set.CheckProsodyctlAbout(about); err != nil {
		t.Error(err)
	}
	// The check has teeth: the usual mistake of enabling the provider as
	// a module is reported.
	broken := bytes.Replace(example, []byte(`"roster";`), []byte(`"roster"; "auth_tokenauthd";`), 1)
	if bytes.Equal(broken, example) {
		t.Fatal("cannot break the example: no \"roster\" module in it")
	}
	if _, err := check(broken); err == nil {
		t.Errorf("prosodyctl check config accepts auth_tokenauthd in modules_enabled")
	}
}

// indent returns b as a Markdown code block: every non-empty line indented
// by four spaces.
func indent(b []byte) []byte {
	var out bytes.Buffer
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			out.WriteString("    ")
		}
		out.WriteString(l)
	}
	return out.Bytes()
}
