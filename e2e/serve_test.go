package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// End-to-end tests of `tokenauthd serve` as a process: signals, sd_notify,
// socket activation, the journal across SIGKILL, and two daemons ("nodes")
// sharing a real redis-server.

// serveProc is a `tokenauthd serve` process.
type serveProc struct {
	cmd     *exec.Cmd
	cfg     string // the configuration file
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
	p := &serveProc{cfg: cfg, sock: sock, logPath: filepath.Join(t.TempDir(), "serve.log")}
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
	if testing.Short() {
		t.Skip("-short: a measurement of thousands of connections to the built daemon")
	}
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

// lineConn is a generic-protocol connection to the daemon.
type lineConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialLines(t testing.TB, sock string) *lineConn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &lineConn{c: c, r: bufio.NewReader(c)}
}

func (l *lineConn) ask(t testing.TB, req string) string {
	t.Helper()
	if _, err := io.WriteString(l.c, fixture.Line(req)); err != nil {
		t.Fatal(err)
	}
	yes, err := protocol.ReadReply(l.r, protocol.Generic)
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	return fixture.YesNo(yes)
}

// scrape fetches a Prometheus text page and returns its samples, keyed by
// the metric name with its labels as printed (name{a="x",b="y"}).
func scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestServeMetricsAndReload runs the real daemon with [metrics] listen,
// sends a mix of requests, reloads it with SIGHUP (once well, once with a
// broken file) and scrapes /metrics: every count is the one expected, the
// replay store survived the reload, and SIGTERM ends it with status 0.
func TestServeMetricsAndReload(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	port := fixture.FreePort(t)
	head := fmt.Sprintf("[daemon]\nsocket = %q\n[metrics]\nlisten = \"127.0.0.1:%d\"\n", sock, port)
	path := filepath.Join(dir, "config.toml")
	fixture.WriteFile(t, path, head+fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil))
	p := startServe(t, path, sock)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	c := dialLines(t, sock)

	tok := fixture.Mint(t, fixture.SecretA, fixture.SeedA, "alice", "a.example")
	for _, r := range []struct{ req, want string }{
		{"auth:alice:a.example:" + tok, "1"},
		{"auth:alice:a.example:" + tok, "0"}, // replayed
		{"auth:bob:a.example:" + fixture.Mint(t, fixture.SecretH, fixture.SeedA, "bob", "a.example"), "0"}, // bad_signature
		{"auth:bob:a.example:12345678", "0"}, // malformed
		{"isuser:bob:a.example", "1"},
		{"hello", "0"}, // bad_request
	} {
		if got := c.ask(t, r.req); got != r.want {
			t.Fatalf("%.25s...: %s, want %s", r.req, got, r.want)
		}
	}

	// Reload: a new host and a rotated secret. The store is kept.
	fixture.WriteFile(t, path, head+fixture.HostBlock("a.example", fixture.SecretB, fixture.SeedA, []string{fixture.SecretA}, nil)+
		fixture.HostBlock("h.example", fixture.SecretH, fixture.SeedH, nil, nil))
	p.hup(t)
	if got := c.ask(t, "auth:alice:a.example:"+tok); got != "0" {
		t.Fatal("token accepted before SIGHUP accepted again after it")
	}
	if got := c.ask(t, "auth:carol:h.example:"+fixture.Mint(t, fixture.SecretH, fixture.SeedH, "carol", "h.example")); got != "1" {
		t.Fatalf("new host not in effect after SIGHUP:\n%s", p.log())
	}
	// A broken file: the previous configuration keeps serving.
	fixture.WriteFile(t, path, head+"[hosts.\"a.example\"]\n")
	p.hup(t)
	if got := c.ask(t, "auth:dave:a.example:"+fixture.Mint(t, fixture.SecretA, fixture.SeedA, "dave", "a.example")); got != "1" {
		t.Fatal("old secret refused after a failed reload")
	}

	m := scrape(t, metricsURL)
	for _, w := range []struct {
		key  string
		want float64
	}{
		{`tokenauthd_requests_total{command="auth",reason="accepted",result="yes"}`, 3},
		{`tokenauthd_requests_total{command="auth",reason="replayed",result="no"}`, 2},
		{`tokenauthd_requests_total{command="auth",reason="bad_signature",result="no"}`, 1},
		{`tokenauthd_requests_total{command="auth",reason="malformed",result="no"}`, 1},
		{`tokenauthd_requests_total{command="isuser",reason="exists",result="yes"}`, 1},
		{`tokenauthd_requests_total{command="invalid",reason="bad_request",result="no"}`, 1},
		{`tokenauthd_request_duration_seconds_count{command="auth"}`, 7},
		{`tokenauthd_replay_store_records`, 3},
		{`tokenauthd_replay_store_errors_total`, 0},
		{`tokenauthd_replay_live_evictions_total`, 0},
		{`tokenauthd_config_reloads_total{result="ok"}`, 1},
		{`tokenauthd_config_reloads_total{result="failed"}`, 1},
	} {
		if got, ok := m[w.key]; !ok || got != w.want {
			t.Errorf("%s = %v (present %v), want %v", w.key, got, ok, w.want)
		}
	}
	build := false
	for k, v := range m {
		if strings.HasPrefix(k, "tokenauthd_build_info{") && v == 1 {
			build = true
		}
	}
	if !build {
		t.Error("no tokenauthd_build_info")
	}
	if _, ok := m["go_goroutines"]; !ok {
		t.Error("no go_goroutines: the Go collector is missing")
	}
	if code := p.signal(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d after SIGTERM:\n%s", code, p.log())
	}
	// The metrics listener went away with the daemon.
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		t.Error("metrics port still open after the daemon stopped")
	}
}

// TestServeMetricsOff: without [metrics] listen nothing listens on TCP.
func TestServeMetricsOff(t *testing.T) {
	cfg, err := setup.Parse("x.toml", []byte(fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil)), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MetricsListen != "" {
		t.Fatalf("metrics on by default: %q", cfg.MetricsListen)
	}
}

// TestSIGHUPSparesRelay: the relay (tokenauthd connect) survives the SIGHUP
// that `pkill -HUP -x tokenauthd` sends it along with the daemon, and goes
// on relaying.
func TestSIGHUPSparesRelay(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	path := filepath.Join(dir, "config.toml")
	fixture.WriteFile(t, path, fmt.Sprintf("[daemon]\nsocket = %q\n", sock)+fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil))
	d := startServe(t, path, sock)
	relay := exec.Command(fixture.Binary(t), "connect", "-config", path, "-protocol", "generic")
	in, _ := relay.StdinPipe()
	outPipe, _ := relay.StdoutPipe()
	stderr := &fixture.Buffer{}
	relay.Stderr = stderr
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Process.Kill(); relay.Wait() })
	out := bufio.NewReader(outPipe)
	ask := func(tok string) string {
		t.Helper()
		io.WriteString(in, fixture.Line("auth:alice:a.example:"+tok))
		line, err := fixture.ReadLineReply(out)
		if err != nil {
			t.Fatalf("relay: %v\n%s", err, stderr)
		}
		return line
	}
	if got := ask(fixture.Mint(t, fixture.SecretA, fixture.SeedA, "alice", "a.example")); got != fixture.LineYes {
		t.Fatalf("before SIGHUP: %q", got)
	}
	relay.Process.Signal(syscall.SIGHUP)
	d.hup(t)
	if got := ask(fixture.Mint(t, fixture.SecretA, fixture.SeedA, "alice", "a.example")); got != fixture.LineYes {
		t.Fatalf("after SIGHUP: %q\n%s", got, stderr)
	}
	in.Close()
	if err := relay.Wait(); err != nil {
		t.Fatalf("relay exit: %v\n%s", err, stderr)
	}
}

// TestE2ERotationWithSIGHUP runs the real binary as the stdin/stdout helper
// and rotates a host's secret and seed with real SIGHUPs, following README's
// procedure, with tokens minted by pyotp (the application's side): no login
// the application makes is refused at any step, the replay store survives
// the reloads, and a broken file leaves the previous configuration serving.
func TestE2ERotationWithSIGHUP(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:pyotp")
	bin := fixture.Binary(t)
	path := fixture.ConfigPath(t)
	const host, user = "a.example", "alice"
	jid := user + "@" + host
	fixture.WriteFile(t, path, fixture.HostBlock(host, fixture.SecretA, fixture.SeedA, nil, nil))

	cmd := exec.Command(bin, "-config", path, "-protocol", "generic")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &fixture.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewReader(outPipe)
	auth := func(tok string) bool {
		t.Helper()
		if _, err := io.WriteString(in, fixture.Line("auth:"+user+":"+host+":"+tok)); err != nil {
			t.Fatal(err)
		}
		yes, err := protocol.ReadReply(out, protocol.Generic)
		if err != nil {
			t.Fatalf("no reply: %v\n%s", err, stderr)
		}
		return yes
	}
	hup := func() {
		t.Helper()
		n := strings.Count(stderr.String(), "configuration reload")
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		fixture.WaitFor(t, "the reload's log line", func() bool { return strings.Count(stderr.String(), "configuration reload") > n })
	}
	app := func(secret, seed string) string { return pyotpToken(t, seed, secret, jid, 0, "") }
	// The handler is installed before the start-up line: wait for it.
	fixture.WaitFor(t, "start-up", func() bool { return strings.Contains(stderr.String(), "tokenauthd started") })

	// Step 0: A everywhere.
	first := app(fixture.SecretA, fixture.SeedA)
	if !auth(first) {
		t.Fatalf("step 0: refused\n%s", stderr)
	}
	pending := app(fixture.SecretA, fixture.SeedA)

	// Step 1: B current, A old; SIGHUP.
	fixture.WriteFile(t, path, fixture.HostBlock(host, fixture.SecretB, fixture.SeedB, []string{fixture.SecretA}, []string{fixture.SeedA}))
	hup()
	if !strings.Contains(stderr.String(), "configuration reloaded") {
		t.Fatalf("reload failed:\n%s", stderr)
	}
	if auth(first) {
		t.Fatal("a token accepted before SIGHUP was accepted again after it")
	}
	if !auth(pending) || !auth(app(fixture.SecretA, fixture.SeedA)) || !auth(app(fixture.SecretB, fixture.SeedB)) {
		t.Fatal("step 1: a token of the old or the new secret refused")
	}

	// A broken file: logged, previous configuration kept.
	fixture.WriteFile(t, path, "[hosts.\"a.example\"]\nold_token_secrets = 3\n")
	hup()
	if !strings.Contains(stderr.String(), "configuration reload failed") {
		t.Fatalf("broken file not reported:\n%s", stderr)
	}

	// Step 2: the application switches to B.
	pending = app(fixture.SecretA, fixture.SeedA)
	if !auth(app(fixture.SecretB, fixture.SeedB)) || !auth(pending) {
		t.Fatal("step 2: refused")
	}

	// Step 3: A removed; SIGHUP.
	fixture.WriteFile(t, path, fixture.HostBlock(host, fixture.SecretB, fixture.SeedB, nil, nil))
	hup()
	if !auth(app(fixture.SecretB, fixture.SeedB)) {
		t.Fatal("step 3: the application refused")
	}
	if auth(app(fixture.SecretA, fixture.SeedA)) {
		t.Fatal("step 3: the removed secret still accepted")
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper exit: %v\n%s", err, stderr)
	}
}

// TestAmnesiaRedisMarkedAgainBeforeStart: a token accepted, then Redis
// restarted without persistence; one daemon finds the loss and marks Redis
// again. A daemon that connects for the first time after that (another
// node's starting, or the same one restarted within the token's lifetime)
// finds a marker and must still not accept the token a second time: its
// record went with Redis's data.
func TestAmnesiaRedisMarkedAgainBeforeStart(t *testing.T) {
	for _, tc := range []struct {
		name       string
		restartOld bool // the daemon that accepted the token restarts
	}{
		{"another node starts", false},
		{"the same daemon restarts", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := fixture.StartRedis(t, 0)
			fixture.MarkRedis(t, rs.Port, "tokenauthd:")
			dir := t.TempDir()
			extra := fmt.Sprintf("[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:%d/0\"\n", rs.Port)
			a := filepath.Join(dir, "a.sock")
			pa := startServeWith(t, extra, a)
			tok := fixture.Token(t, "alice")
			if !fixture.Auth(t, a, "alice", tok) {
				t.Fatal("fresh token refused")
			}
			rs.Stop()
			fixture.StartRedis(t, rs.Port)
			// Any request makes the daemon find the loss and mark Redis again.
			if fixture.Auth(t, a, "bob", fixture.Token(t, "bob")) {
				t.Fatal("a token minted in the step of the loss was accepted")
			}
			sock := filepath.Join(dir, "b.sock")
			if tc.restartOld {
				pa.signal(t, syscall.SIGTERM)
				sock = a
			}
			startServeWith(t, extra, sock)
			if fixture.Auth(t, sock, "alice", tok) {
				t.Fatal("the token accepted before Redis lost its data was accepted again by a daemon started after the loss")
			}
		})
	}
}

// Replay stores that may forget: a Redis restarted without persistence or
// flushed, a lost journal, a memory store restarted. A token accepted
// before the loss is never accepted after it; fresh tokens are refused
// until the refusals end, and the log and explain say so.

// TestAmnesiaJournal: a token accepted, the daemon killed, its journal
// lost (deleted, or damaged in the middle): the restarted daemon does not
// accept the token again. It cannot tell that token from a fresh one, so
// it refuses every token that could have been accepted before, and logs
// why and until when.
func TestAmnesiaJournal(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(path string) error
	}{
		{"deleted", os.Remove},
		{"damaged", func(path string) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			// The header, the record of the token, then a record of
			// another token: damage the first.
			b[8+3] ^= 0xff
			return os.WriteFile(path, b, 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "d.sock")
			journal := filepath.Join(dir, "replay.journal")
			extra := fmt.Sprintf("[replay]\njournal = %q\n", journal)
			fixture.MakeJournal(t, journal)
			p := startServeWith(t, extra, sock)
			tok := fixture.Token(t, "alice")
			if !fixture.Auth(t, sock, "alice", tok) || !fixture.Auth(t, sock, "bob", fixture.Token(t, "bob")) {
				t.Fatal("fresh token refused")
			}
			p.signal(t, syscall.SIGKILL)
			if err := tc.lose(journal); err != nil {
				t.Fatal(err)
			}
			p2 := startServeWith(t, extra, sock)
			if fixture.Auth(t, sock, "alice", tok) {
				t.Fatal("the token accepted before the journal was lost was accepted again")
			}
			if fixture.Auth(t, sock, "carol", fixture.Token(t, "carol")) {
				t.Error("a token minted in the same step was accepted: it cannot be told from a replay")
			}
			log := p2.log()
			for _, want := range []string{"the replay store may have lost records", "refused_until=", "reason=store_forgot", "tokens minted before"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
		})
	}
}

// TestAmnesiaRedis: a token accepted, then Redis loses its data (restarted
// without persistence, or flushed): the daemon does not accept the token
// again, nor any token that could have been accepted before the loss,
// whose records are gone too; the socket's "unused" and "seen" requests
// call none of them unused or seen. The log says why and until when.
func TestAmnesiaRedis(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(t *testing.T, rs *fixture.Redis)
	}{
		{"restarted without persistence", func(t *testing.T, rs *fixture.Redis) {
			rs.Stop()
			fixture.StartRedis(t, rs.Port)
		}},
		{"flushed", func(t *testing.T, rs *fixture.Redis) {
			c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.Port)})
			defer c.Close()
			if err := c.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := fixture.StartRedis(t, 0)
			fixture.MarkRedis(t, rs.Port, "tokenauthd:")
			sock := filepath.Join(t.TempDir(), "d.sock")
			cfg := fixture.WriteConfig(t, t.TempDir(), fmt.Sprintf("[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:%d/0\"\n", rs.Port))
			p := startServe(t, cfg, sock)
			tok := fixture.Token(t, "alice")
			if !fixture.Auth(t, sock, "alice", tok) {
				t.Fatal("fresh token refused")
			}
			tc.lose(t, rs)
			if fixture.Auth(t, sock, "alice", tok) {
				t.Fatal("the token accepted before Redis lost its data was accepted again")
			}
			fresh := fixture.Token(t, "bob")
			for _, cmd := range []string{protocol.CmdUnused, protocol.CmdSeen} {
				if yes, err := protocol.Query(context.Background(), "unix", sock, protocol.Generic, protocol.Request{Command: cmd, User: "bob", Server: fixture.Host, Password: fresh}); err != nil || yes {
					t.Errorf("%s after the loss = %v, %v; want no", cmd, yes, err)
				}
			}
			if fixture.Auth(t, sock, "bob", fresh) {
				t.Error("a token minted in the same step was accepted: it cannot be told from a replay")
			}
			log := p.log()
			for _, want := range []string{"the replay store may have lost records", "refused_until=", "reason=store_forgot"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
			// explain tells why, and from when tokens are accepted again.
			stdout, _, _ := runBinary(t, nil, "explain", "-config", cfg, "-socket", sock, "alice@"+fixture.Host, tok)
			if !strings.Contains(string(stdout), "may have lost records") || !strings.Contains(string(stdout), "tokens minted from") {
				t.Errorf("explain:\n%s", stdout)
			}
		})
	}
}

// testVerifier returns a verifier of fixture.Host's configuration plus extra,
// to mint tokens with.
func testVerifier(t *testing.T, extra string) (*verifier.Offline, verifier.Params) {
	t.Helper()
	cfg, err := setup.Load(fixture.WriteConfig(t, t.TempDir(), extra), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := cfg.NewOffline()
	if err != nil {
		t.Fatal(err)
	}
	return v, cfg.Verifier.Params
}

// TestAmnesiaMemoryRestart: a memory store without journal starts empty.
// By default a token accepted before a restart is accepted again after it,
// while it is inside its window: what the documentation says. With
// refuse_after_start the restarted daemon refuses it, as every token that
// could have been accepted before it started, and logs until when. Steps
// of 3 s keep the wait for the first refusals to end short.
func TestAmnesiaMemoryRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a long run of the built daemon, restarted, waiting out 3-second steps")
	}
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("refuse_after_start=%v", refuse), func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "d.sock")
			extra := fmt.Sprintf("[token]\ninterval = 3\n[replay]\nrefuse_after_start = %v\n", refuse)
			v, params := testVerifier(t, extra)
			p := startServeWith(t, extra, sock)
			if refuse { // the refusals of the first start
				time.Sleep(time.Until(params.RefusalEnds(time.Now())))
			}
			tok := fixture.MintWith(t, v, "alice", fixture.Host, time.Now())
			if !fixture.Auth(t, sock, "alice", tok) {
				t.Fatal("fresh token refused")
			}
			p.signal(t, syscall.SIGTERM)
			p2 := startServeWith(t, extra, sock)
			if got := fixture.Auth(t, sock, "alice", tok); got == refuse {
				t.Fatalf("replay after the restart: accepted %v", got)
			}
			if refuse && !strings.Contains(p2.log(), "refuse_after_start") || refuse != strings.Contains(p2.log(), "reason=store_forgot") {
				t.Errorf("log:\n%s", p2.log())
			}
		})
	}
}

// TestAmnesiaRefusalsEnd: the refusals after a loss end drift+1 steps after
// the loss's step began. With 1-second steps a token minted two seconds
// after the start of a daemon with refuse_after_start is accepted.
func TestAmnesiaRefusalsEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a long run of the built daemon, waiting out its refusals")
	}
	sock := filepath.Join(t.TempDir(), "d.sock")
	extra := "[token]\ninterval = 1\n[replay]\nrefuse_after_start = true\n"
	v, params := testVerifier(t, extra)
	start := time.Now()
	startServeWith(t, extra, sock)
	if fixture.Auth(t, sock, "alice", fixture.MintWith(t, v, "alice", fixture.Host, time.Now())) && time.Now().Before(params.RefusalEnds(start)) {
		t.Fatal("a token minted in the start's step was accepted")
	}
	// Wait out the refusals (from the last moment the daemon may have
	// started).
	time.Sleep(time.Until(params.RefusalEnds(time.Now())))
	if !fixture.Auth(t, sock, "bob", fixture.MintWith(t, v, "bob", fixture.Host, time.Now())) {
		t.Fatal("a token minted after the refusals ended was refused")
	}
}
