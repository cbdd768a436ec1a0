package main

// End-to-end tests of `tokenauthd serve` as a process: signals, sd_notify,
// socket activation, the journal across SIGKILL, and two daemons ("nodes")
// sharing a real redis-server.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// serveProc is a `tokenauthd serve` process.
type serveProc struct {
	cmd     *exec.Cmd
	sock    string
	logPath string
	exited  chan struct{}
}

// startServeProc runs `tokenauthd serve` on the configuration text cfg (testHost
// plus extra) at socket sock, with extra environment, and waits until it
// answers on the socket.
func startServeProc(t *testing.T, extra, sock string, environ ...string) *serveProc {
	t.Helper()
	return startServeFile(t, writeTestConfig(t, t.TempDir(), extra), sock, environ...)
}

// startServeFile is startServeProc on the configuration file cfg.
func startServeFile(t *testing.T, cfg, sock string, environ ...string) *serveProc {
	t.Helper()
	dir := t.TempDir()
	p := &serveProc{sock: sock, logPath: filepath.Join(dir, "serve.log"), exited: make(chan struct{})}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(binary(t), "serve", "-config", cfg, "-socket", sock)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = append(os.Environ(), environ...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("serve log:\n%s", p.log())
		}
	})
	p.waitReady(t)
	return p
}

func (p *serveProc) waitReady(t *testing.T) {
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
func (p *serveProc) signal(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("serve still running 20 s after %v", sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

// testMinter returns a verifier for testHost to mint tokens with.
func testMinter(t testing.TB) *verifier.Verifier {
	t.Helper()
	cfg, err := config.Load(writeTestConfig(t, t.TempDir(), ""))
	if err != nil {
		t.Fatal(err)
	}
	v, err := config.NewVerifier(cfg, replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mintT(t testing.TB, v *verifier.Verifier, user string) string {
	t.Helper()
	tok, err := v.Mint(user, testHost, time.Now(), "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// authOnce opens a connection to sock, asks one auth request in ejabberd
// framing and reports the answer.
func authOnce(t testing.TB, sock, user, tok string) bool {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := askFrame(t, c, "auth:"+user+":"+testHost+":"+tok)
	switch string(r) {
	case string(frameYes):
		return true
	case string(frameNo):
		return false
	}
	t.Fatalf("reply %x", r)
	return false
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
	p := startServeProc(t, "", sock, "NOTIFY_SOCKET="+notifyPath, "WATCHDOG_USEC=200000")
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
	v := testMinter(t)
	if !authOnce(t, sock, "alice", mintT(t, v, "alice")) {
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
	cfg := writeTestConfig(t, dir, "")
	// LISTEN_PID must be the serving process's: the shell's, which exec
	// keeps.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" serve -config "$1" -socket "$2"`,
		binary(t), cfg, own)
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
	v := testMinter(t)
	tok := mintT(t, v, "alice")
	// The socket queues the connection until serve accepts it.
	c, err := net.Dial("unix", actSock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	ok := string(askFrame(t, c, "auth:alice:"+testHost+":"+tok)) == string(frameYes)
	if !ok {
		t.Fatal("fresh token refused on the activated socket")
	}
	if _, err := os.Stat(own); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve created its own socket under socket activation: %v", err)
	}
}

// TestServeJournalSurvivesSIGKILL: a token accepted just before the daemon
// is killed with SIGKILL is refused by the restarted daemon; a fresh one is
// accepted.
func TestServeJournalSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	journal := filepath.Join(dir, "replay.journal")
	extra := fmt.Sprintf("[replay]\njournal = %q\n", journal)
	v := testMinter(t)
	makeJournal(t, journal) // not a first start: no refusals

	p := startServeProc(t, extra, sock)
	tok := mintT(t, v, "alice")
	if !authOnce(t, sock, "alice", tok) {
		t.Fatal("fresh token refused")
	}
	p.signal(t, syscall.SIGKILL)

	p2 := startServeProc(t, extra, sock) // over the socket file the dead one left
	if authOnce(t, sock, "alice", tok) {
		t.Fatal("the token accepted before SIGKILL was accepted again after the restart")
	}
	if !authOnce(t, sock, "alice", mintT(t, v, "alice")) {
		t.Fatal("fresh token refused after the restart")
	}
	if !strings.Contains(p2.log(), "loaded=1") {
		t.Errorf("restart log does not report the loaded record:\n%s", p2.log())
	}
	if code := p2.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status = %d", code)
	}
	// A third start reads both tokens back from a cleanly closed journal.
	p3 := startServeProc(t, extra, sock)
	if authOnce(t, sock, "alice", tok) {
		t.Fatal("replay accepted after a clean restart")
	}
	if !strings.Contains(p3.log(), "loaded=2") {
		t.Errorf("third start does not load both records:\n%s", p3.log())
	}
}

// redisServerProc is a real redis-server on a loopback port.
type redisServerProc struct {
	port int
	cmd  *exec.Cmd
}

// startRedisServer starts redis-server on port (a free one if 0) and stops
// it by its PID when the test ends.
func startRedisServer(t testing.TB, port int) *redisServerProc {
	t.Helper()
	requirePeer(t, "/usr/bin/redis-server")
	if port == 0 {
		port = freePort(t)
	}
	cmd := exec.Command("/usr/bin/redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &redisServerProc{port: port, cmd: cmd}
	t.Cleanup(p.stop)
	waitPort(t, port, 10*time.Second)
	return p
}

func (p *redisServerProc) stop() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// TestServeRedisTwoNodes: two daemons sharing one Redis: a token accepted
// through either is refused through the other.
func TestServeRedisTwoNodes(t *testing.T) {
	rs := startRedisServer(t, 0)
	dir := t.TempDir()
	extra := fmt.Sprintf("[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:%d/0\"\n", rs.port)
	markRedis(t, rs.port, "tokenauthd:") // not a first start: no refusals
	a := filepath.Join(dir, "a.sock")
	b := filepath.Join(dir, "b.sock")
	startServeProc(t, extra, a)
	startServeProc(t, extra, b)
	v := testMinter(t)

	tok := mintT(t, v, "alice")
	if !authOnce(t, a, "alice", tok) {
		t.Fatal("fresh token refused by node A")
	}
	if authOnce(t, b, "alice", tok) {
		t.Fatal("node B accepted a token node A had accepted")
	}
	tok2 := mintT(t, v, "bob")
	if !authOnce(t, b, "bob", tok2) {
		t.Fatal("fresh token refused by node B")
	}
	if authOnce(t, a, "bob", tok2) {
		t.Fatal("node A accepted a token node B had accepted")
	}
}

// TestServeRedisDown: with Redis stopped, tokens are refused within the
// bound and the daemon stays up; once Redis is back with its data, fresh
// tokens are accepted without a restart. (A Redis back without its data:
// TestAmnesiaRedis.)
func TestServeRedisDown(t *testing.T) {
	dir := t.TempDir()
	rs := startRedisPersistent(t, 0, dir)
	markRedis(t, rs.port, "tokenauthd:") // not a first start: no refusals
	const bound = 300 * time.Millisecond
	extra := fmt.Sprintf("[replay]\nstore = \"redis\"\nredis_addrs = [\"127.0.0.1:%d\"]\nredis_timeout_ms = %d\n",
		rs.port, bound.Milliseconds())
	sock := filepath.Join(dir, "d.sock")
	p := startServeProc(t, extra, sock)
	v := testMinter(t)
	if !authOnce(t, sock, "alice", mintT(t, v, "alice")) {
		t.Fatal("fresh token refused with Redis up")
	}

	rs.stop()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		start := time.Now()
		if r := askFrame(t, c, "auth:alice:"+testHost+":"+mintT(t, v, "alice")); string(r) != string(frameNo) {
			t.Fatalf("Redis down: reply %x, want %x", r, frameNo)
		}
		// The bound is the feature; generous slack.
		if el := time.Since(start); el > bound+2*time.Second {
			t.Fatalf("Redis down: answered after %v, bound %v", el, bound)
		}
	}
	// Still serving what needs no store.
	if r := askFrame(t, c, "isuser:alice:"+testHost); string(r) != string(frameYes) {
		t.Fatalf("isuser with Redis down = %x", r)
	}
	if !strings.Contains(p.log(), "reason=store_unavailable") {
		t.Errorf("no store_unavailable refusal logged:\n%s", p.log())
	}

	startRedisPersistent(t, rs.port, dir)
	if r := askFrame(t, c, "auth:alice:"+testHost+":"+mintT(t, v, "alice")); string(r) != string(frameYes) {
		t.Fatalf("Redis back: fresh token reply %x, want %x", r, frameYes)
	}
	if code := p.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status = %d", code)
	}
}

// TestEjabberdPoolThroughDaemon: a real ejabberd with a pool of 4 relays
// (`tokenauthd connect`), which it picks round robin, in front of one
// daemon: a fresh token logs in once, and each of 5 replays is refused,
// whichever relay carries it. The daemon runs as root and gives its socket
// to the ejabberd group (socket_group), as a unit's SocketGroup= would.
func TestEjabberdPoolThroughDaemon(t *testing.T) {
	requirePeer(t, debianPython, "python:pyotp", "python:slixmpp")
	dir := ejabberdDir(t)
	// Not named like the relay: startEjabberd's clean-up looks for left
	// processes by the relay's path.
	sock := filepath.Join(dir, "run", "d.sock")
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte(e2eConfig()+"[daemon]\nsocket_group = \"ejabberd\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startServeFile(t, cfg, sock)

	src, err := os.ReadFile(binary(t))
	if err != nil {
		t.Fatal(err)
	}
	relay := filepath.Join(dir, "tokenauthd")
	if err := os.WriteFile(relay, src, 0o755); err != nil {
		t.Fatal(err)
	}
	relayLog := filepath.Join(dir, "relay.log")
	chownEjabberd(t, dir)
	port := startEjabberd(t, fmt.Sprintf("%s connect -protocol ejabberd -socket %s 2>>%s", relay, sock, relayLog), 4)

	fresh := pyotpToken(t, e2eSeed, e2eSecret, "alice@localhost", 0, "")
	if !xmppLogin(t, "alice@localhost", fresh, port, "PLAIN") {
		b, _ := os.ReadFile(relayLog)
		t.Fatalf("a fresh token was refused\nrelay log:\n%s\ndaemon log:\n%s", b, d.log())
	}
	for i := 1; i <= 5; i++ {
		if xmppLogin(t, "alice@localhost", fresh, port, "PLAIN") {
			t.Fatalf("replay %d of 5 was accepted", i)
		}
	}
	if n := strings.Count(d.log(), "reason=replayed"); n != 5 {
		t.Errorf("daemon logged %d replays, want 5:\n%s", n, d.log())
	}
	if relays := processesRunning(relay, "connect"); relays != 4 {
		t.Errorf("%d relays running, want ejabberd's pool of 4", relays)
	}
	// Another user's fresh token still logs in: nothing is out of step.
	if !xmppLogin(t, "bob@localhost", pyotpToken(t, e2eSeed, e2eSecret, "bob@localhost", 0, ""), port, "PLAIN") {
		t.Error("a fresh token was refused after the replays")
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

// TestServeRedisSentinel: with redis_addrs naming a Sentinel and
// redis_master its master, the daemon finds the master through the
// Sentinel and records there.
func TestServeRedisSentinel(t *testing.T) {
	requirePeer(t, "/usr/bin/redis-cli")
	master := startRedisServer(t, 0)
	sport := freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel monitor testmaster 127.0.0.1 %d 1\n", sport, master.port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := exec.Command("/usr/bin/redis-server", conf, "--sentinel", "--daemonize", "no", "--dir", dir)
	if err := sentinel.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sentinel.Process.Kill(); sentinel.Wait() })
	waitPort(t, sport, 10*time.Second)

	markRedis(t, master.port, "sentinel-test:") // not a first start: no refusals
	cfg, err := config.Load(writeTestConfig(t, dir, fmt.Sprintf(
		"[replay]\nstore = \"redis\"\nredis_addrs = [\"127.0.0.1:%d\"]\nredis_master = \"testmaster\"\nredis_prefix = \"sentinel-test:\"\n", sport)))
	if err != nil {
		t.Fatal(err)
	}
	store, err := newStore(cfg, testLogger(t), true)
	if err != nil {
		t.Fatal(err)
	}
	d, sock, _ := startDaemon(t, store)
	tok := d.mintForTest(t, "alice")
	if !authOnce(t, sock, "alice", tok) {
		t.Fatal("fresh token refused through Sentinel")
	}
	if authOnce(t, sock, "alice", tok) {
		t.Fatal("replay accepted through Sentinel")
	}
	// The record is on the master, under the prefix.
	out, err := exec.Command("/usr/bin/redis-cli", "-p", fmt.Sprint(master.port), "--scan", "--pattern", "sentinel-test:*").Output()
	if err != nil {
		t.Fatal(err)
	}
	keys := slices.DeleteFunc(strings.Fields(string(out)), func(k string) bool { return k == "sentinel-test:epoch" })
	if n := len(keys); n != 1 {
		t.Errorf("%d records under the prefix on the master, want 1", n)
	}
}
