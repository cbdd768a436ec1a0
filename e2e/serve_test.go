package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// End-to-end tests of `tokenauthd serve` as a process: signals, sd_notify,
// socket activation, the journal across SIGKILL, and two daemons ("nodes")
// sharing a real redis-server.

// serveProc is a `tokenauthd serve` process.
type serveProc struct {
	cmd     *exec.Cmd
	sock    string
	logPath string
	exited  <-chan struct{}
	stop    func() // SIGTERM, then SIGKILL; idempotent, also run at cleanup
	metrics string // http://host:port/metrics, where the test configured it
}

// startServeWith runs `tokenauthd serve` on a configuration for
// fixture.Host with extra TOML appended; see startServe.
func startServeWith(t testing.TB, extra, sock string, environ ...string) *serveProc {
	t.Helper()
	return startServe(t, fixture.WriteConfig(t, t.TempDir(), extra), sock, environ...)
}

// startServe runs `tokenauthd serve` on the configuration file cfg at
// socket sock, with extra environment, and waits until it answers on the
// socket. Its log is p.log().
func startServe(t testing.TB, cfg, sock string, environ ...string) *serveProc {
	t.Helper()
	p := &serveProc{sock: sock, logPath: filepath.Join(t.TempDir(), "serve.log")}
	p.cmd = exec.Command(fixture.Binary(t), "serve", "-config", cfg, "-socket", sock)
	p.cmd.Env = append(os.Environ(), environ...)
	p.stop, p.exited = startCmd(t, p.cmd, p.logPath)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", p.log())
		}
	})
	p.waitReady(t)
	return p
}

func (p *serveProc) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.exited:
			t.Fatalf("serve exited at start (%v):\n%s", p.cmd.ProcessState, p.log())
		default:
		}
		if c, err := net.Dial("unix", p.sock); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve does not listen on %s:\n%s", p.sock, p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *serveProc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// signal sends sig and waits for the process to end; it returns the exit
// status (-1 for death by a signal).
func (p *serveProc) signal(t testing.TB, sig syscall.Signal) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("serve still running 20 s after %v", sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

// hup sends SIGHUP and waits for the reload's outcome in the log.
func (p *serveProc) hup(t testing.TB) {
	t.Helper()
	n := strings.Count(p.log(), "configuration reload")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	fixture.WaitFor(t, "the reload's log line", func() bool { return strings.Count(p.log(), "configuration reload") > n })
}

// TestServeProcessSignalsAndNotify: READY=1 once serving, WATCHDOG=1 when
// the watchdog is on, STOPPING=1 and exit status 0 on SIGTERM.
func TestServeProcessSignalsAndNotify(t *testing.T) {
	dir := t.TempDir()
	notifyPath := filepath.Join(dir, "notify.sock")
	nl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nl.Read(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	sock := filepath.Join(dir, "d.sock")
	p := startServeWith(t, "", sock, "NOTIFY_SOCKET="+notifyPath, "WATCHDOG_USEC=200000")
	want := func(msg string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m := <-got:
				if m == msg {
					return
				}
			case <-timeout:
				t.Fatalf("no %s from serve", msg)
			}
		}
	}
	want("READY=1")
	want("WATCHDOG=1")
	if !fixture.Auth(t, sock, "alice", fixture.Token(t, "alice")) {
		t.Fatal("fresh token refused")
	}
	if code := p.signal(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status after SIGTERM = %d, want 0", code)
	}
	want("STOPPING=1")
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after SIGTERM: %v", err)
	}
}

// TestServeSocketActivation: given a listening socket by the LISTEN_FDS
// protocol, serve answers on it and creates no socket of its own.
func TestServeSocketActivation(t *testing.T) {
	dir := t.TempDir()
	actSock := filepath.Join(dir, "activated.sock")
	l, err := net.Listen("unix", actSock)
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the child holds it through f
	own := filepath.Join(dir, "own.sock")
	cfg := fixture.WriteConfig(t, dir, "")
	// LISTEN_PID must be the serving process's: the shell's, which exec
	// keeps.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" serve -config "$1" -socket "$2"`,
		fixture.Binary(t), cfg, own)
	cmd.ExtraFiles = []*os.File{f} // fd 3
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("serve log:\n%s", stderr.String())
		}
	}()
	tok := fixture.Token(t, "alice")
	// The socket queues the connection until serve accepts it.
	c, err := net.Dial("unix", actSock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	ok := string(fixture.AskFrame(t, c, "auth:alice:"+fixture.Host+":"+tok)) == string(fixture.FrameYes)
	if !ok {
		t.Fatal("fresh token refused on the activated socket")
	}
	if _, err := os.Stat(own); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve created its own socket under socket activation: %v", err)
	}
}

// TestServeJournalSurvivesSIGKILL: a token accepted just before the daemon
// is killed with SIGKILL is refused by the restarted daemon.
func TestServeJournalSurvivesSIGKILL(t *testing.T) {
	journalSurvivesSIGKILL(t, "", fixture.Token)
}

// TestServeJWTJournalSurvivesSIGKILL: the same with JWTs from `tokenauthd
// mint -jwt`: the JWT's record in the journal outlives the daemon.
func TestServeJWTJournalSurvivesSIGKILL(t *testing.T) {
	key := fixture.NewJWTKey(t, t.TempDir(), "app-1")
	journalSurvivesSIGKILL(t, key.Section(fixture.Host), jwtsFor(key, mintJWT))
}

// jwtsFor mints JWTs for fixture.Host's users, signed with key by mint
// (mintJWT or pyJWT).
func jwtsFor(key fixture.JWTKey, mint func(testing.TB, fixture.JWTKey, string) string) minter {
	return func(t testing.TB, user string) string { return mint(t, key, user+"@"+fixture.Host) }
}

// journalSurvivesSIGKILL: a credential from mint accepted just before the
// daemon (fixture.Host's configuration with hosts added) is killed with
// SIGKILL is refused by the restarted daemon; a fresh one is accepted; a
// third start after a clean stop reads both back.
func journalSurvivesSIGKILL(t *testing.T, hosts string, mint minter) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	journal := filepath.Join(dir, "replay.journal")
	extra := hosts + fmt.Sprintf("[replay]\njournal = %q\n", journal)
	fixture.MakeJournal(t, journal) // not a first start: no refusals

	p := startServeWith(t, extra, sock)
	tok := mint(t, "alice")
	if !fixture.Auth(t, sock, "alice", tok) {
		t.Fatalf("fresh credential refused:\n%s", p.log())
	}
	p.signal(t, syscall.SIGKILL)

	p2 := startServeWith(t, extra, sock) // over the socket file the dead one left
	if fixture.Auth(t, sock, "alice", tok) {
		t.Fatal("the credential accepted before SIGKILL was accepted again after the restart")
	}
	if !fixture.Auth(t, sock, "alice", mint(t, "alice")) {
		t.Fatal("fresh credential refused after the restart")
	}
	if !strings.Contains(p2.log(), "loaded=1") {
		t.Errorf("restart log does not report the loaded record:\n%s", p2.log())
	}
	if code := p2.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status = %d", code)
	}
	// A third start reads both records back from a cleanly closed journal.
	p3 := startServeWith(t, extra, sock)
	if fixture.Auth(t, sock, "alice", tok) {
		t.Fatal("replay accepted after a clean restart")
	}
	if !strings.Contains(p3.log(), "loaded=2") {
		t.Errorf("third start does not load both records:\n%s", p3.log())
	}
}

// TestServeRedisTwoNodes: two daemons sharing one Redis: a token accepted
// through either is refused through the other.
func TestServeRedisTwoNodes(t *testing.T) {
	redisTwoNodes(t, "", fixture.Token)
}

// TestServeJWTRedisTwoNodes: the same with JWTs from PyJWT, as an
// application in Python mints them.
func TestServeJWTRedisTwoNodes(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:jwt", "python:cryptography")
	key := fixture.NewJWTKey(t, t.TempDir(), "app-1")
	redisTwoNodes(t, key.Section(fixture.Host), jwtsFor(key, pyJWT))
}

// redisTwoNodes: two daemons (fixture.Host's configuration with hosts
// added) sharing one Redis: a credential from mint accepted through either
// is refused through the other.
func redisTwoNodes(t *testing.T, hosts string, mint minter) {
	rs := fixture.StartRedis(t, 0)
	dir := t.TempDir()
	extra := hosts + fmt.Sprintf("[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:%d/0\"\n", rs.Port)
	fixture.MarkRedis(t, rs.Port, "tokenauthd:") // not a first start: no refusals
	a := filepath.Join(dir, "a.sock")
	b := filepath.Join(dir, "b.sock")
	startServeWith(t, extra, a)
	startServeWith(t, extra, b)

	tok := mint(t, "alice")
	if !fixture.Auth(t, a, "alice", tok) {
		t.Fatal("fresh credential refused by node A")
	}
	if fixture.Auth(t, b, "alice", tok) {
		t.Fatal("node B accepted a credential node A had accepted")
	}
	tok2 := mint(t, "bob")
	if !fixture.Auth(t, b, "bob", tok2) {
		t.Fatal("fresh credential refused by node B")
	}
	if fixture.Auth(t, a, "bob", tok2) {
		t.Fatal("node A accepted a credential node B had accepted")
	}
}

// TestServeRedisDown: with Redis stopped, tokens are refused within the
// bound and the daemon stays up; once Redis is back with its data, fresh
// tokens are accepted without a restart. (A Redis back without its data:
// TestAmnesiaRedis.)
func TestServeRedisDown(t *testing.T) {
	dir := t.TempDir()
	rs := fixture.StartRedisIn(t, 0, dir)
	fixture.MarkRedis(t, rs.Port, "tokenauthd:") // not a first start: no refusals
	const bound = 300 * time.Millisecond
	extra := fmt.Sprintf("[replay]\nstore = \"redis\"\nredis_addrs = [\"127.0.0.1:%d\"]\nredis_timeout_ms = %d\n",
		rs.Port, bound.Milliseconds())
	sock := filepath.Join(dir, "d.sock")
	p := startServeWith(t, extra, sock)
	if !fixture.Auth(t, sock, "alice", fixture.Token(t, "alice")) {
		t.Fatal("fresh token refused with Redis up")
	}

	rs.Stop()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		start := time.Now()
		if r := fixture.AskFrame(t, c, "auth:alice:"+fixture.Host+":"+fixture.Token(t, "alice")); string(r) != string(fixture.FrameNo) {
			t.Fatalf("Redis down: reply %x, want %x", r, fixture.FrameNo)
		}
		// The bound is the feature; generous slack.
		if el := time.Since(start); el > bound+2*time.Second {
			t.Fatalf("Redis down: answered after %v, bound %v", el, bound)
		}
	}
	// Still serving what needs no store.
	if r := fixture.AskFrame(t, c, "isuser:alice:"+fixture.Host); string(r) != string(fixture.FrameYes) {
		t.Fatalf("isuser with Redis down = %x", r)
	}
	if !strings.Contains(p.log(), "reason=store_unavailable") {
		t.Errorf("no store_unavailable refusal logged:\n%s", p.log())
	}

	fixture.StartRedisIn(t, rs.Port, dir)
	if r := fixture.AskFrame(t, c, "auth:alice:"+fixture.Host+":"+fixture.Token(t, "alice")); string(r) != string(fixture.FrameYes) {
		t.Fatalf("Redis back: fresh token reply %x, want %x", r, fixture.FrameYes)
	}
	if code := p.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status = %d", code)
	}
}

// ejabberdPool is a real ejabberd whose extauth_program is a pool of
// relays (`tokenauthd connect`), which it picks round robin, in front of
// one daemon.
type ejabberdPool struct {
	port     int // ejabberd's c2s port
	daemon   *serveProc
	relay    string // the relays' program
	relayLog string // the relays' stderr, all of them
}

// startEjabberdPool runs the daemon on a configuration of hosts (TOML),
// with metrics, as root, giving its socket to the ejabberd group
// (socket_group) as a unit's SocketGroup= would, and a real ejabberd with
// a pool of size relays to it.
func startEjabberdPool(t *testing.T, hosts string, size int) *ejabberdPool {
	t.Helper()
	dir := ejabberdDir(t)
	// Not named like the relay: startEjabberd's clean-up looks for left
	// processes by the relay's path.
	sock := filepath.Join(dir, "run", "d.sock")
	metrics := fixture.FreePort(t)
	cfg := fixture.WriteFile(t, filepath.Join(t.TempDir(), "config.toml"),
		hosts+fmt.Sprintf("[daemon]\nsocket_group = \"ejabberd\"\n[metrics]\nlisten = \"127.0.0.1:%d\"\n", metrics))
	p := &ejabberdPool{daemon: startServe(t, cfg, sock), relay: stageBinary(t, dir), relayLog: filepath.Join(dir, "relay.log")}
	p.daemon.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics)
	fixture.WaitPort(t, metrics, 10*time.Second)
	chownEjabberd(t, dir)
	p.port = startEjabberd(t, fmt.Sprintf("%s connect -protocol ejabberd -socket %s 2>>%s", p.relay, sock, p.relayLog), size)
	return p
}

// relaysUsed counts the relays that have carried a request to the daemon:
// each logs once that it connected, before it answers its first request.
func (p *ejabberdPool) relaysUsed(t *testing.T) int {
	t.Helper()
	return strings.Count(readFile(t, p.relayLog), "connected to the daemon")
}

// logs are the relays' and the daemon's logs, for a failure's message.
func (p *ejabberdPool) logs(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("relay log:\n%s\ndaemon log:\n%s", readFile(t, p.relayLog), p.daemon.log())
}

// TestEjabberdPoolThroughDaemon: a real ejabberd with a pool of 4 relays in
// front of one daemon: a fresh token logs in once, and each of 5 replays is
// refused, whichever relay carries it.
func TestEjabberdPoolThroughDaemon(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:pyotp", "python:slixmpp")
	p := startEjabberdPool(t, e2eConfig(), 4)
	fresh := pyotpToken(t, e2eSeed, e2eSecret, "alice@localhost", 0, "")
	if !xmppLogin(t, "alice@localhost", fresh, p.port, "PLAIN") {
		t.Fatalf("a fresh token was refused\n%s", p.logs(t))
	}
	for i := 1; i <= 5; i++ {
		if xmppLogin(t, "alice@localhost", fresh, p.port, "PLAIN") {
			t.Fatalf("replay %d of 5 was accepted", i)
		}
	}
	if n := strings.Count(p.daemon.log(), "reason=replayed"); n != 5 {
		t.Errorf("daemon logged %d replays, want 5:\n%s", n, p.daemon.log())
	}
	if relays := processesRunning(p.relay, "connect"); relays != 4 {
		t.Errorf("%d relays running, want ejabberd's pool of 4", relays)
	}
	// Another user's fresh token still logs in: nothing is out of step.
	if !xmppLogin(t, "bob@localhost", pyotpToken(t, e2eSeed, e2eSecret, "bob@localhost", 0, ""), p.port, "PLAIN") {
		t.Error("a fresh token was refused after the replays")
	}
}

// TestEjabberdJWTPoolThroughDaemon: a JWT from `tokenauthd mint -jwt` logs
// in once through a real ejabberd, its pool of 4 relays and the daemon;
// replayed until another relay of the pool than the login's has carried
// it, it is refused every time.
func TestEjabberdJWTPoolThroughDaemon(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:slixmpp")
	key := fixture.NewJWTKey(t, t.TempDir(), "app-1")
	p := startEjabberdPool(t, key.Section("localhost"), 4)
	jwt := mintJWT(t, key, "alice@localhost")
	if !xmppLogin(t, "alice@localhost", jwt, p.port, "PLAIN") {
		t.Fatalf("a fresh JWT was refused\n%s", p.logs(t))
	}
	if n := p.relaysUsed(t); n != 1 {
		t.Fatalf("%d relays carried the one login, want 1\n%s", n, p.logs(t))
	}
	// ejabberd picks a relay by a counter its whole VM shares: replay
	// until a second relay has carried a request.
	replays := 0
	for p.relaysUsed(t) < 2 {
		if replays == 20 {
			t.Fatalf("20 replays, all through the relay of the login\n%s", p.logs(t))
		}
		replays++
		if xmppLogin(t, "alice@localhost", jwt, p.port, "PLAIN") {
			t.Fatalf("replay %d was accepted (%d relays used)", replays, p.relaysUsed(t))
		}
	}
	t.Logf("%d replays until another relay carried one", replays)
	// Every request the relays carried was that login and its replays:
	// the second relay's was a replay.
	want := map[string]float64{
		`tokenauthd_requests_total{command="auth",reason="accepted",result="yes"}`: 1,
		`tokenauthd_requests_total{command="auth",reason="replayed",result="no"}`:  float64(replays),
	}
	for k, v := range scrape(t, p.daemon.metrics) {
		if strings.HasPrefix(k, "tokenauthd_requests_total{") && v != want[k] {
			t.Errorf("%s = %v, want %v", k, v, want[k])
		}
	}
	if n := strings.Count(p.daemon.log(), "reason=replayed user=alice host=localhost jwt=true"); n != replays {
		t.Errorf("daemon logged %d JWT replays, want %d:\n%s", n, replays, p.daemon.log())
	}
	// Another JWT, bob's, logs in: nothing is out of step.
	if !xmppLogin(t, "bob@localhost", mintJWT(t, key, "bob@localhost"), p.port, "PLAIN") {
		t.Error("a fresh JWT was refused after the replays")
	}
	if sig := jwt[strings.LastIndexByte(jwt, '.')+1:]; strings.Contains(p.logs(t), sig) {
		t.Error("a JWT's signature appears in the logs")
	}
}

// processesRunning counts the processes whose argv starts with argv.
func processesRunning(argv ...string) int {
	n := 0
	want := []byte(strings.Join(argv, "\x00") + "\x00")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.HasPrefix(cmdline, want) {
			n++
		}
	}
	return n
}

// The daemon's connection limits: max_connections, request_timeout_ms and
// the bound on buffered requests, through the real binary; the request
// deadline against the shutdown's.

// limitsDaemon runs the binary's daemon with [daemon] extra and metrics,
// and waits until its only connection so far (waitReady's) is gone.
func limitsDaemon(t *testing.T, daemonKeys string) (p *serveProc, metricsURL string) {
	t.Helper()
	port := fixture.FreePort(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	p = startServeWith(t, fmt.Sprintf("[daemon]\n%s\n[metrics]\nlisten = \"127.0.0.1:%d\"\n", daemonKeys, port), sock)
	metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	fixture.WaitPort(t, port, 10*time.Second)
	fixture.WaitFor(t, "no connection open", func() bool { return scrape(t, metricsURL)["tokenauthd_connections"] == 0 })
	return p, metricsURL
}

// Beyond max_connections a connection is closed at once, counted and
// logged; the open ones still answer; once one closes, a new one is let in.
func TestServeMaxConnections(t *testing.T) {
	p, url := limitsDaemon(t, "max_connections = 4")
	var open []net.Conn
	for i := 0; i < 4; i++ {
		c, err := fixture.DialAsk(t, p.sock)
		if err != nil {
			t.Fatalf("connection %d of 4: %v", i+1, err)
		}
		open = append(open, c)
	}
	for i := 0; i < 2; i++ {
		c, err := fixture.DialAsk(t, p.sock)
		if err == nil {
			t.Fatalf("connection %d over max_connections was answered", i+1)
		}
		if !fixture.ClosedByPeer(c) {
			t.Errorf("connection %d over max_connections: not closed by the daemon", i+1)
		}
	}
	for i, c := range open {
		if err := fixture.AskIsUser(c); err != nil {
			t.Errorf("connection %d after the refusals: %v", i+1, err)
		}
	}
	m := scrape(t, url)
	if m["tokenauthd_connections_refused_total"] != 2 || m["tokenauthd_connections"] != 4 {
		t.Errorf("refused %v, open %v; want 2, 4", m["tokenauthd_connections_refused_total"], m["tokenauthd_connections"])
	}
	if !strings.Contains(p.log(), `msg="connection refused" reason=max_connections max_connections=4`) {
		t.Errorf("no refusal logged:\n%s", p.log())
	}
	open[0].Close()
	fixture.WaitFor(t, "the closed connection to be gone", func() bool { return scrape(t, url)["tokenauthd_connections"] == 3 })
	if _, err := fixture.DialAsk(t, p.sock); err != nil {
		t.Errorf("a connection after one closed: %v", err)
	}
}

// A request whose first byte has arrived must arrive whole within
// request_timeout_ms, in either framing, or the connection is closed; an
// idle connection stays open, however long, before its first request and
// between requests.
func TestServeRequestTimeout(t *testing.T) {
	p, url := limitsDaemon(t, "request_timeout_ms = 200")
	idle, err := fixture.DialAsk(t, p.sock) // idle between requests
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := net.Dial("unix", p.sock) // idle before its first request
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for _, part := range []string{fixture.Frame("isuser:alice:" + fixture.Host)[:7], "isuser:al", fixture.Frame("isuser:alice:" + fixture.Host)[:1]} {
		c, err := net.Dial("unix", p.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, part); err != nil {
			t.Fatal(err)
		}
		if !fixture.ClosedByPeer(c) {
			t.Errorf("%q then nothing: the connection was not closed", part)
		}
	}
	// Both idle connections have waited longer than the stalled ones.
	for name, c := range map[string]net.Conn{"between requests": idle, "before its first": fresh} {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := fixture.AskIsUser(c); err != nil {
			t.Errorf("idle %s: %v", name, err)
		}
	}
	if n := scrape(t, url)["tokenauthd_request_timeouts_total"]; n != 3 {
		t.Errorf("tokenauthd_request_timeouts_total = %v, want 3", n)
	}
	if n := strings.Count(p.log(), "reason=request_timeout"); n != 3 {
		t.Errorf("%d request_timeout lines, want 3:\n%s", n, p.log())
	}
}

// The daemon does not buffer a frame longer than any request it could say
// yes to: a 64 KiB frame is skipped and answered no as too large, and the
// next request on the connection is answered right.
func TestServeLongFrameSkipped(t *testing.T) {
	p, url := limitsDaemon(t, "")
	c, err := fixture.DialAsk(t, p.sock)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{protocol.DefaultMaxLine + 1, 0xffff} {
		go c.Write([]byte(fixture.Frame(longAuthBody(n, fixture.Host))))
		reply, err := fixture.ReadReply(c, protocol.Ejabberd)
		if err != nil || !bytes.Equal(reply, fixture.FrameNo) {
			t.Fatalf("%d-byte frame: reply %x, %v; want %x", n, reply, err, fixture.FrameNo)
		}
		if r := fixture.AskFrame(t, c, "auth:alice:"+fixture.Host+":"+fixture.Token(t, "alice")); !bytes.Equal(r, fixture.FrameYes) {
			t.Errorf("fresh token after a %d-byte frame: %x", n, r)
		}
	}
	m := scrape(t, url)
	if bad, malformed := m[`tokenauthd_requests_total{command="invalid",reason="bad_request",result="no"}`],
		m[`tokenauthd_requests_total{command="auth",reason="malformed",result="no"}`]; bad != 2 || malformed != 0 {
		t.Errorf("bad_request %v, malformed %v; want 2, 0 (skipped, not read)", bad, malformed)
	}
	if !strings.Contains(p.log(), `detail="protocol: request too large"`) {
		t.Errorf("no request too large logged:\n%s", p.log())
	}
}

// What stalled connections cost the daemon: N clients each send all but
// the last 535 bytes of a 65,535-byte ejabberd frame and stop. Not in
// the default suite; run it by hand, for BENCHMARKS.md:
//
//	TOKENAUTHD_STALLED=4000 go test -run TestStalledConnections -v .
//
// TOKENAUTHD_STALLED_BIN runs another tokenauthd binary instead of this
// tree's (an older one, for a before/after figure), and
// TOKENAUTHD_STALLED_DAEMON adds keys to its [daemon] section, e.g.
// "max_connections = 5000" to measure what each connection costs rather
// than how many the daemon keeps.

func TestStalledConnections(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("TOKENAUTHD_STALLED"))
	if err != nil || n <= 0 {
		t.Skip("set TOKENAUTHD_STALLED to a number of connections (e.g. 4000) to measure them")
	}
	bin := os.Getenv("TOKENAUTHD_STALLED_BIN")
	if bin == "" {
		bin = fixture.Binary(t)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	cfg := fixture.WriteConfig(t, dir, "[daemon]\n"+strings.ReplaceAll(os.Getenv("TOKENAUTHD_STALLED_DAEMON"), `\n`, "\n")+"\n")
	cmd := exec.Command(bin, "serve", "-config", cfg, "-socket", sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if i == 500 {
			t.Fatal("the daemon does not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	idle := settledRSS(t, pid)

	start := append([]byte{0xff, 0xff}, strings.Repeat("x", 65_000)...)
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		c.Write(start)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	stalled := settledRSS(t, pid)
	open := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && os.IsTimeout(err) {
			open++ // not closed by the daemon
		}
	}
	t.Logf("%s: idle %d KiB; %d stalled connections (%d kept open by the daemon): %d KiB, %.1f KiB per kept connection",
		bin, idle, n, open, stalled, float64(stalled-idle)/float64(max(open, 1)))
}

// settledRSS waits until the process's RSS stops growing (two samples half
// a second apart within 1%, or 20 s) and returns it in KiB.
func settledRSS(t *testing.T, pid int) int64 {
	t.Helper()
	prev := rssKB(t, pid)
	for i := 0; i < 40; i++ {
		time.Sleep(500 * time.Millisecond)
		cur := rssKB(t, pid)
		if cur-prev <= prev/100 {
			return cur
		}
		prev = cur
	}
	fmt.Fprintln(os.Stderr, "RSS still growing after 20 s")
	return prev
}
