package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
)

// Test secrets of the host "example.org" in every daemon test.
const (
	testHost   = "example.org"
	testSecret = "serve-test-token-secret"
	testSeed   = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
)

// writeTestConfig writes a configuration for testHost into dir, with extra
// TOML appended (sections of its own), and returns its path.
func writeTestConfig(t testing.TB, dir, extra string) string {
	t.Helper()
	p := filepath.Join(dir, "config.toml")
	body := fmt.Sprintf("[hosts.%q]\ntoken_secret = %q\notp_seed = %q\n%s", testHost, testSecret, testSeed, extra)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testLogger returns a logger into the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// startDaemon runs an in-process daemon on store (a fresh memory store if
// nil) listening at a socket in a temporary directory. It returns the
// daemon, its socket and the function that stops it and returns Run's
// error.
func startDaemon(t testing.TB, store replay.Store) (*daemon, string, func() error) {
	t.Helper()
	return startDaemonAt(t, filepath.Join(t.TempDir(), "d.sock"), store)
}

// startDaemonAt is startDaemon on the socket sock.
func startDaemonAt(t testing.TB, sock string, store replay.Store) (*daemon, string, func() error) {
	t.Helper()
	return startDaemonWith(t, sock, "", store, nil)
}

// startDaemonWith is startDaemonAt with extra configuration (TOML
// sections) and a setup function, if not nil, that sees the daemon before
// it runs.
func startDaemonWith(t testing.TB, sock, extra string, store replay.Store, setup func(*daemon)) (*daemon, string, func() error) {
	t.Helper()
	cfg, err := config.Load(writeTestConfig(t, t.TempDir(), extra))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Socket = sock
	log := testLogger(t)
	if _, ok := t.(*testing.B); ok {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if store == nil {
		store = newMemoryStore(cfg, log)
	}
	d, err := newDaemon(cfg, log, store)
	if err != nil {
		t.Fatal(err)
	}
	d.notify = func(string) {}
	if setup != nil {
		setup(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var stopped bool
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
		}
		return runErr
	}
	t.Cleanup(func() { stop() })
	return d, cfg.Socket, stop
}

// mint returns a fresh token for user@testHost from the daemon's verifier.
func (d *daemon) mintForTest(t testing.TB, user string) string {
	t.Helper()
	tok, err := d.handler.v.Load().Mint(user, testHost, time.Now(), "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// frame returns an ejabberd frame of body (see ejFrame).
func frame(body string) []byte { return []byte(ejFrame(body)) }

// askFrame sends one ejabberd frame on c and returns the reply's bytes
// (frameYes or frameNo; anything else fails the test).
func askFrame(t testing.TB, c net.Conn, body string) []byte {
	t.Helper()
	if _, err := c.Write(frame(body)); err != nil {
		t.Fatal(err)
	}
	reply, err := readReply(c, protocol.Ejabberd)
	if err != nil {
		t.Fatalf("reading the reply: %v", err)
	}
	return reply
}

// readReply reads one reply in mode from r, and not a byte past it (r may
// hold later replies), with protocol.ReadReply, and returns its bytes:
// protocol.Reply's yes or no. Anything else is an error.
func readReply(r io.Reader, mode protocol.Mode) ([]byte, error) {
	n := int64(len(protocol.Reply(mode, true)))
	ok, err := protocol.ReadReply(bufio.NewReaderSize(io.LimitReader(r, n), 16), mode)
	if err != nil {
		return nil, err
	}
	return []byte(protocol.Reply(mode, ok)), nil
}

// readLineReply reads one generic reply from r with protocol.ReadReply
// and returns its bytes: lineYes or lineNo.
func readLineReply(r *bufio.Reader) (string, error) {
	ok, err := protocol.ReadReply(r, protocol.Generic)
	if err != nil {
		return "", err
	}
	return protocol.Reply(protocol.Generic, ok), nil
}

// The replies, as protocol writes them.
var (
	frameYes = []byte(protocol.Reply(protocol.Ejabberd, true))
	frameNo  = []byte(protocol.Reply(protocol.Ejabberd, false))
	lineYes  = protocol.Reply(protocol.Generic, true)
	lineNo   = protocol.Reply(protocol.Generic, false)
)

// yesNo is the tests' shorthand for a reply read: "1" for yes, "0" for no.
func yesNo(yes bool) string {
	if yes {
		return "1"
	}
	return "0"
}

// genLine returns body as a generic request line (protocol.AppendFrame);
// it panics on a body protocol refuses: no test sends one by accident.
func genLine(body string) string {
	b, err := protocol.AppendFrame(nil, protocol.Generic, []byte(body))
	if err != nil {
		panic(err)
	}
	return string(b)
}

func dialT(t testing.TB, sock string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServeAnswersBothFramings: one daemon, one connection per framing; a
// token accepted on one connection is refused on every other.
func TestServeAnswersBothFramings(t *testing.T) {
	d, sock, stop := startDaemon(t, nil)

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want 0660", fi.Mode().Perm())
	}

	ej := dialT(t, sock)
	gen := dialT(t, sock)
	genR := bufio.NewReader(gen)
	askLine := func(line string) string {
		t.Helper()
		if _, err := io.WriteString(gen, genLine(line)); err != nil {
			t.Fatal(err)
		}
		s, err := readLineReply(genR)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	tok := d.mintForTest(t, "alice")
	if got := askFrame(t, ej, "auth:alice:"+testHost+":"+tok); string(got) != string(frameYes) {
		t.Fatalf("fresh token via ejabberd framing = %x, want %x", got, frameYes)
	}
	if got := askLine("auth:alice:" + testHost + ":" + tok); got != lineNo {
		t.Errorf("replay via another connection = %q, want %q", got, lineNo)
	}
	if got := askFrame(t, ej, "auth:alice:"+testHost+":"+tok); string(got) != string(frameNo) {
		t.Errorf("replay via the same connection = %x, want %x", got, frameNo)
	}
	tok2 := d.mintForTest(t, "bob")
	if got := askLine("auth:bob:" + testHost + ":" + tok2); got != lineYes {
		t.Errorf("fresh token via generic lines = %q, want %q", got, lineYes)
	}
	if got := askLine("isuser:bob:" + testHost); got != lineYes {
		t.Errorf("isuser = %q, want %q", got, lineYes)
	}
	// Bad bytes are answered no, and the connection stays in sync.
	if got := askFrame(t, ej, "nonsense"); string(got) != string(frameNo) {
		t.Errorf("bad request = %x, want %x", got, frameNo)
	}
	if got := askFrame(t, ej, "isuser:bob:"+testHost); string(got) != string(frameYes) {
		t.Errorf("isuser after a bad request = %x, want %x", got, frameYes)
	}

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file still there after stop: %v", err)
	}
	if _, err := ej.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read on a connection after stop: %v, want EOF", err)
	}
}

// blockingStore holds every Record until released.
type blockingStore struct {
	replay.Store
	entered chan struct{}
	release chan struct{}
}

func (s *blockingStore) Record(ctx context.Context, k replay.Key) (bool, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.Store.Record(ctx, k)
}

// TestServeStopAnswersInFlight: a request being answered when the daemon is
// told to stop is answered; then the daemon closes and Run returns nil.
func TestServeStopAnswersInFlight(t *testing.T) {
	bs := &blockingStore{
		Store:   replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: time.Minute}),
		entered: make(chan struct{}),
		release: make(chan struct{}),
	}
	d, sock, stop := startDaemon(t, bs)
	c := dialT(t, sock)
	idle := dialT(t, sock)
	tok := d.mintForTest(t, "carol")
	if _, err := c.Write(frame("auth:carol:" + testHost + ":" + tok)); err != nil {
		t.Fatal(err)
	}
	<-bs.entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// The daemon stops accepting before it waits for the request.
	for {
		nc, err := net.Dial("unix", sock)
		if err != nil {
			break
		}
		nc.Close()
		time.Sleep(5 * time.Millisecond)
	}
	close(bs.release)
	reply, err := readReply(c, protocol.Ejabberd)
	if err != nil {
		t.Fatalf("in-flight request not answered: %v", err)
	}
	if string(reply) != string(frameYes) {
		t.Errorf("in-flight reply = %x, want %x", reply, frameYes)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection after stop: %v, want EOF", err)
	}
}

// TestServeReplacesStaleSocket: a socket file left by a killed daemon does
// not keep a new one from starting; a live daemon's socket does.
func TestServeReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // leaves the file, as SIGKILL would
	l2, err := listenUnix(sock)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	defer l2.Close()
	if _, err := listenUnix(sock); err == nil {
		t.Fatal("listened on the socket of a live daemon")
	}
	notSock := filepath.Join(dir, "file")
	os.WriteFile(notSock, nil, 0o600)
	if _, err := listenUnix(notSock); err == nil {
		t.Fatal("replaced a regular file")
	}
}

// TestServeConcurrentConnections: 64 connections at once, each with its own
// tokens: every token accepted exactly once; the replays, sent through
// other connections, all refused; one token sent on all 64 connections at
// the same moment is accepted on exactly one. Run under -race.
func TestServeConcurrentConnections(t *testing.T) {
	const conns, perConn = 64, 8
	d, sock, _ := startDaemon(t, nil)
	toks := make([][]string, conns)
	for i := range toks {
		for j := 0; j < perConn; j++ {
			toks[i] = append(toks[i], d.mintForTest(t, fmt.Sprintf("user%d", i)))
		}
	}
	cs := make([]net.Conn, conns)
	for i := range cs {
		cs[i] = dialT(t, sock)
	}
	// each runs f on every connection at once and returns how many
	// requests were answered yes.
	each := func(f func(i int, c net.Conn) int) int {
		results := make(chan int, conns)
		for i, c := range cs {
			go func() { results <- f(i, c) }()
		}
		total := 0
		for range cs {
			total += <-results
		}
		return total
	}
	ask := func(c net.Conn, user, tok string) int {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(frame("auth:" + user + ":" + testHost + ":" + tok)); err != nil {
			return -1000
		}
		reply, err := readReply(c, protocol.Ejabberd)
		if err != nil {
			return -1000
		}
		if string(reply) == string(frameYes) {
			return 1
		}
		return 0
	}

	fresh := each(func(i int, c net.Conn) int {
		n := 0
		for _, tok := range toks[i] {
			n += ask(c, fmt.Sprintf("user%d", i), tok)
		}
		return n
	})
	if fresh != conns*perConn {
		t.Fatalf("fresh tokens accepted: %d, want %d", fresh, conns*perConn)
	}
	replays := each(func(i int, c net.Conn) int {
		other := (i + 1) % conns // another connection's tokens
		n := 0
		for _, tok := range toks[other] {
			n += ask(c, fmt.Sprintf("user%d", other), tok)
		}
		return n
	})
	if replays != 0 {
		t.Fatalf("replays accepted: %d, want 0", replays)
	}
	shared := d.mintForTest(t, "shared")
	if n := each(func(_ int, c net.Conn) int { return ask(c, "shared", shared) }); n != 1 {
		t.Fatalf("one token sent on %d connections at once was accepted %d times, want 1", conns, n)
	}
}

// TestServeWatchdogProbe: the watchdog's self-probe succeeds on a serving
// daemon and fails on one that no longer accepts. It is not counted as a
// request in the metrics; a peer's isuser is.
func TestServeWatchdogProbe(t *testing.T) {
	var m *metrics
	d, sock, stop := startDaemonWith(t, filepath.Join(t.TempDir(), "d.sock"), "", nil, func(d *daemon) {
		m = newMetrics(d.store)
		d.handler.metrics = m
	})
	isuser := map[string]string{"command": "isuser", "result": "no", "reason": "no_such_user"}
	for i := 0; i < 3; i++ {
		if err := d.probe(5 * time.Second); err != nil {
			t.Fatalf("probe of a serving daemon: %v", err)
		}
	}
	if n := scrapeValue(t, m, "tokenauthd_requests_total", isuser); n > 0 {
		t.Errorf("after 3 probes, %v isuser requests counted, want none", n)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, genLine("isuser:watchdog:watchdog.invalid"))
	if reply, err := readLineReply(bufio.NewReader(c)); err != nil || reply != lineNo {
		t.Fatalf("isuser from a peer = %q, %v", reply, err)
	}
	c.Close()
	if n := scrapeValue(t, m, "tokenauthd_requests_total", isuser); n != 1 {
		t.Errorf("after an isuser from a peer, %v counted, want 1", n)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := d.probe(time.Second); err == nil {
		t.Fatal("probe of a stopped daemon succeeded")
	}
}

// TestBindUnixNeverOpen: the socket file is created with mode 0660 exactly,
// whatever the process's umask (no chmod follows): under umask 0 a plain
// bind would leave it connectable by anyone.
func TestBindUnixNeverOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "u.sock")
	old := syscall.Umask(0)
	l, err := bindUnix(path)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != socketMode {
		t.Errorf("socket created with mode %v under umask 0, want %v", perm, os.FileMode(socketMode))
	}
	// The process's umask is left as it was.
	if got := syscall.Umask(old); got != old {
		t.Errorf("umask %#o after bindUnix, want %#o", got, old)
	}
}
