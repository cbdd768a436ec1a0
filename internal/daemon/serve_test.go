package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
)

// startDaemon runs an in-process daemon on store (a fresh memory store if
// nil) listening at a socket in a temporary directory. It returns the
// daemon, its socket and the function that stops it and returns Run's
// error.
func startDaemon(t testing.TB, store replay.Store) (*Daemon, string, func() error) {
	t.Helper()
	return startDaemonAt(t, filepath.Join(t.TempDir(), "d.sock"), store)
}

// startDaemonAt is startDaemon on the socket sock.
func startDaemonAt(t testing.TB, sock string, store replay.Store) (*Daemon, string, func() error) {
	t.Helper()
	return startDaemonWith(t, sock, "", store)
}

// startDaemonWith is startDaemonAt with extra configuration (TOML
// sections).
func startDaemonWith(t testing.TB, sock, extra string, store replay.Store) (*Daemon, string, func() error) {
	t.Helper()
	cfg, err := setup.Load(fixture.WriteConfig(t, t.TempDir(), extra), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := fixture.Logger(t)
	if _, ok := t.(*testing.B); ok {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := New(cfg, Options{Log: log, Store: store, Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	d.notify = func(string) {}
	stop := d.Start(context.Background())
	t.Cleanup(func() { stop() })
	return d, sock, stop
}

// TestServeAnswersBothFramings: one daemon, one connection per framing; a
// token accepted on one connection is refused on every other.
func TestServeAnswersBothFramings(t *testing.T) {
	_, sock, stop := startDaemon(t, nil)

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want 0660", fi.Mode().Perm())
	}

	ej := fixture.Dial(t, sock)
	gen := fixture.Dial(t, sock)
	genR := bufio.NewReader(gen)
	askLine := func(line string) string {
		t.Helper()
		if _, err := io.WriteString(gen, fixture.Line(line)); err != nil {
			t.Fatal(err)
		}
		s, err := fixture.ReadLineReply(genR)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	tok := fixture.Token(t, "alice")
	if got := fixture.AskFrame(t, ej, "auth:alice:"+fixture.Host+":"+tok); string(got) != string(fixture.FrameYes) {
		t.Fatalf("fresh token via ejabberd framing = %x, want %x", got, fixture.FrameYes)
	}
	if got := askLine("auth:alice:" + fixture.Host + ":" + tok); got != fixture.LineNo {
		t.Errorf("replay via another connection = %q, want %q", got, fixture.LineNo)
	}
	if got := fixture.AskFrame(t, ej, "auth:alice:"+fixture.Host+":"+tok); string(got) != string(fixture.FrameNo) {
		t.Errorf("replay via the same connection = %x, want %x", got, fixture.FrameNo)
	}
	tok2 := fixture.Token(t, "bob")
	if got := askLine("auth:bob:" + fixture.Host + ":" + tok2); got != fixture.LineYes {
		t.Errorf("fresh token via generic lines = %q, want %q", got, fixture.LineYes)
	}
	if got := askLine("isuser:bob:" + fixture.Host); got != fixture.LineYes {
		t.Errorf("isuser = %q, want %q", got, fixture.LineYes)
	}
	// Bad bytes are answered no, and the connection stays in sync.
	if got := fixture.AskFrame(t, ej, "nonsense"); string(got) != string(fixture.FrameNo) {
		t.Errorf("bad request = %x, want %x", got, fixture.FrameNo)
	}
	if got := fixture.AskFrame(t, ej, "isuser:bob:"+fixture.Host); string(got) != string(fixture.FrameYes) {
		t.Errorf("isuser after a bad request = %x, want %x", got, fixture.FrameYes)
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
	_, sock, stop := startDaemon(t, bs)
	c := fixture.Dial(t, sock)
	idle := fixture.Dial(t, sock)
	tok := fixture.Token(t, "carol")
	if _, err := c.Write([]byte(fixture.Frame("auth:carol:" + fixture.Host + ":" + tok))); err != nil {
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
	reply, err := fixture.ReadReply(c, protocol.Ejabberd)
	if err != nil {
		t.Fatalf("in-flight request not answered: %v", err)
	}
	if string(reply) != string(fixture.FrameYes) {
		t.Errorf("in-flight reply = %x, want %x", reply, fixture.FrameYes)
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
	_, sock, _ := startDaemon(t, nil)
	toks := make([][]string, conns)
	for i := range toks {
		for j := 0; j < perConn; j++ {
			toks[i] = append(toks[i], fixture.Token(t, fmt.Sprintf("user%d", i)))
		}
	}
	cs := make([]net.Conn, conns)
	for i := range cs {
		cs[i] = fixture.Dial(t, sock)
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
		if _, err := c.Write([]byte(fixture.Frame("auth:" + user + ":" + fixture.Host + ":" + tok))); err != nil {
			return -1000
		}
		reply, err := fixture.ReadReply(c, protocol.Ejabberd)
		if err != nil {
			return -1000
		}
		if string(reply) == string(fixture.FrameYes) {
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
	shared := fixture.Token(t, "shared")
	if n := each(func(_ int, c net.Conn) int { return ask(c, "shared", shared) }); n != 1 {
		t.Fatalf("one token sent on %d connections at once was accepted %d times, want 1", conns, n)
	}
}

// TestServeWatchdogProbe: the watchdog's self-probe succeeds on a serving
// daemon and fails on one that no longer accepts. It is not counted as a
// request in the metrics; a peer's isuser is.
func TestServeWatchdogProbe(t *testing.T) {
	d, sock, stop := startDaemonWith(t, filepath.Join(t.TempDir(), "d.sock"), "[metrics]\nlisten = \"127.0.0.1:0\"\n", nil)
	m := d.metrics
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
	io.WriteString(c, fixture.Line("isuser:watchdog:watchdog.invalid"))
	if reply, err := fixture.ReadLineReply(bufio.NewReader(c)); err != nil || reply != fixture.LineNo {
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

// chgrp gives a socket to the group, and refuses a path that names
// anything else, a symlink above all, leaving its target as it was.
func TestChgrpNoSymlink(t *testing.T) {
	gid := otherGroup(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "d.sock")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := chgrp(link, fmt.Sprint(gid)); err == nil {
		t.Error("chgrp of a symlink succeeded")
	}
	if err := chgrp(target, fmt.Sprint(gid)); err == nil {
		t.Error("chgrp of a regular file succeeded")
	}
	if g := fileGid(t, target); g == gid {
		t.Errorf("the symlink's target was given to group %d", gid)
	}
	sock := filepath.Join(dir, "real.sock")
	l, err := bindUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := chgrp(sock, fmt.Sprint(gid)); err != nil || fileGid(t, sock) != gid {
		t.Errorf("chgrp of a socket: %v, group %d, want %d", err, fileGid(t, sock), gid)
	}
}

// otherGroup returns a group the test may give its files to other than
// the one they get: any, as root; else a supplementary group, if any.
func otherGroup(t *testing.T) int {
	t.Helper()
	if os.Geteuid() == 0 {
		return 4242
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g != os.Getegid() {
			return g
		}
	}
	t.Skip("needs root or a supplementary group")
	return 0
}

// fileGid returns the group of path itself (not of a symlink's target).
func fileGid(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Gid)
}

// The watchdog's probe gets in even when max_connections are open: a
// daemon at its limit is busy, not hung.
func TestServeWatchdogProbeAtLimit(t *testing.T) {
	d, sock, _ := startDaemonWith(t, filepath.Join(t.TempDir(), "d.sock"), "[daemon]\nmax_connections = 1\n", nil)
	if _, err := fixture.DialAsk(t, sock); err != nil {
		t.Fatal(err)
	}
	if c, err := fixture.DialAsk(t, sock); err == nil || !fixture.ClosedByPeer(c) {
		t.Fatalf("a second connection: %v, want it refused", err)
	}
	if err := d.probe(5 * time.Second); err != nil {
		t.Errorf("probe at max_connections: %v", err)
	}
}

// Once the daemon stops a connection, the request hooks leave its
// deadline in the past: a request read or started afterwards, and the
// wait for its rest that arms the request deadline, cannot undo the stop
// and leave a read blocked.
func TestGuardedConnStopSticks(t *testing.T) {
	for _, then := range []string{"read", "started", "started read"} {
		a, b := net.Pipe()
		g := &guardedConn{c: a, timeout: time.Hour}
		g.requestStarted()
		g.stop()
		for _, hook := range strings.Fields(then) {
			map[string]func(){"read": g.requestRead, "started": g.requestStarted}[hook]()
		}
		done := make(chan error, 1)
		go func() { _, err := g.Read(make([]byte, 1)); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) || !g.stopped() {
				t.Errorf("stop, then %s: read = %v, want the deadline", then, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("stop, then %s: the read still blocks", then)
		}
		a.Close()
		b.Close()
	}
}

// A reload cannot change the connection limits: it says so.
func TestReloadLimitsRestartOnly(t *testing.T) {
	old := &config.Config{MaxConnections: 1024, RequestTimeout: 5 * time.Second}
	for _, cfg := range []*config.Config{
		{MaxConnections: 10, RequestTimeout: 5 * time.Second},
		{MaxConnections: 1024, RequestTimeout: time.Second},
	} {
		if s := restartOnly(old, cfg); !slices.Contains(s, "daemon connection limits") {
			t.Errorf("restartOnly(%+v) = %v", cfg, s)
		}
	}
}

// TestServeRedisSentinel: with redis_addrs naming a Sentinel and
// redis_master its master, the daemon finds the master through the
// Sentinel and records there.
func TestServeRedisSentinel(t *testing.T) {
	master := fixture.StartRedis(t, 0)
	sport := fixture.FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel monitor testmaster 127.0.0.1 %d 1\n", sport, master.Port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := exec.Command(master.Peers.RedisServer, conf, "--sentinel", "--daemonize", "no", "--dir", dir)
	if err := sentinel.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sentinel.Process.Kill(); sentinel.Wait() })
	fixture.WaitPort(t, sport, 10*time.Second)

	fixture.MarkRedis(t, master.Port, "sentinel-test:") // not a first start: no refusals
	cfg, err := setup.Load(fixture.WriteConfig(t, dir, fmt.Sprintf(
		"[replay]\nstore = \"redis\"\nredis_addrs = [\"127.0.0.1:%d\"]\nredis_master = \"testmaster\"\nredis_prefix = \"sentinel-test:\"\n", sport)), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := newStore(cfg, fixture.Logger(t), true)
	if err != nil {
		t.Fatal(err)
	}
	_, sock, _ := startDaemon(t, store)
	tok := fixture.Token(t, "alice")
	if !fixture.Auth(t, sock, "alice", tok) {
		t.Fatal("fresh token refused through Sentinel")
	}
	if fixture.Auth(t, sock, "alice", tok) {
		t.Fatal("replay accepted through Sentinel")
	}
	// The record is on the master, under the prefix.
	out, err := exec.Command(master.Peers.RedisCLI, "-p", fmt.Sprint(master.Port), "--scan", "--pattern", "sentinel-test:*").Output()
	if err != nil {
		t.Fatal(err)
	}
	keys := slices.DeleteFunc(strings.Fields(string(out)), func(k string) bool { return k == "sentinel-test:epoch" })
	if n := len(keys); n != 1 {
		t.Errorf("%d records under the prefix on the master, want 1", n)
	}
}

// deadlineCounter is a connection that counts the read deadlines set on it.
type deadlineCounter struct {
	net.Conn
	set atomic.Int64
}

func (c *deadlineCounter) SetReadDeadline(t time.Time) error {
	c.set.Add(1)
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineCounter) SetDeadline(t time.Time) error {
	c.set.Add(1)
	return c.Conn.SetDeadline(t)
}

// A request that arrives in one read costs no read deadline: arming and
// clearing a timer per request wakes the runtime's scheduler twice more
// per request. Only a request that must be waited for, its first bytes
// in, arms request_timeout_ms, and then once. Over net.Pipe each write is
// one read on the other end.
func TestServeDeadlineOnlyForSplitRequests(t *testing.T) {
	frame := fixture.Frame("isuser:alice:" + fixture.Host)
	line := "isuser:alice:" + fixture.Host + "\n"
	for _, tc := range []struct {
		name    string
		mode    protocol.Mode
		writes  []string // in order
		replies []int    // replies read after each write
		want    int64    // read deadlines set
	}{
		{"frames each whole", protocol.Ejabberd, []string{frame, frame, frame}, []int{1, 1, 1}, 0},
		{"lines each whole", protocol.Generic, []string{line, line, line}, []int{1, 1, 1}, 0},
		{"two frames in one write", protocol.Ejabberd, []string{frame + frame}, []int{2}, 0},
		// Armed once when the daemon must wait for the rest, cleared once.
		{"a frame in two writes", protocol.Ejabberd, []string{frame[:5], frame[5:]}, []int{0, 1}, 2},
		{"a frame's length in two writes", protocol.Ejabberd, []string{frame[:1], frame[1:]}, []int{0, 1}, 2},
		{"a line in three writes", protocol.Generic, []string{line[:3], line[3:9], line[9:]}, []int{0, 0, 1}, 2},
		{"a split frame, then whole ones", protocol.Ejabberd, []string{frame[:5], frame[5:], frame, frame}, []int{0, 1, 1, 1}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _, _ := startDaemon(t, nil)
			a, b := net.Pipe()
			defer b.Close()
			c := &deadlineCounter{Conn: a}
			g, _ := d.track(c, false)
			if g == nil {
				t.Fatal("connection not admitted")
			}
			done := make(chan struct{})
			go func() { d.serveConn(context.Background(), g, false); close(done) }()
			b.SetDeadline(time.Now().Add(10 * time.Second))
			replies := bufio.NewReader(b)
			for i, w := range tc.writes {
				if _, err := io.WriteString(b, w); err != nil {
					t.Fatal(err)
				}
				for range tc.replies[i] {
					if ok, err := protocol.ReadReply(replies, tc.mode); err != nil || !ok {
						t.Fatalf("write %d: reply %v, %v", i+1, ok, err)
					}
				}
			}
			b.Close()
			<-done
			if n := c.set.Load(); n != tc.want {
				t.Errorf("%d read deadlines set, want %d", n, tc.want)
			}
		})
	}
}
