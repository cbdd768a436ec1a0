package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// The watchdog's probe gets in even when max_connections are open: a
// daemon at its limit is busy, not hung.
func TestServeWatchdogProbeAtLimit(t *testing.T) {
	d, sock, _ := startDaemonWith(t, filepath.Join(t.TempDir(), "d.sock"), "[daemon]\nmax_connections = 1\n", nil, nil)
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
// deadline in the past: a request read or started afterwards cannot undo
// the stop and leave a read blocked.
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
		go func() { _, err := a.Read(make([]byte, 1)); done <- err }()
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
	fixture.RequirePeer(t, "/usr/bin/redis-cli")
	master := fixture.StartRedis(t, 0)
	sport := fixture.FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel monitor testmaster 127.0.0.1 %d 1\n", sport, master.Port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := exec.Command("/usr/bin/redis-server", conf, "--sentinel", "--daemonize", "no", "--dir", dir)
	if err := sentinel.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sentinel.Process.Kill(); sentinel.Wait() })
	fixture.WaitPort(t, sport, 10*time.Second)

	fixture.MarkRedis(t, master.Port, "sentinel-test:") // not a first start: no refusals
	cfg, err := config.Load(fixture.WriteConfig(t, dir, fmt.Sprintf(
		"[replay]\nstore = \"redis\"\nredis_addrs = [\"127.0.0.1:%d\"]\nredis_master = \"testmaster\"\nredis_prefix = \"sentinel-test:\"\n", sport)))
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
	out, err := exec.Command("/usr/bin/redis-cli", "-p", fmt.Sprint(master.Port), "--scan", "--pattern", "sentinel-test:*").Output()
	if err != nil {
		t.Fatal(err)
	}
	keys := slices.DeleteFunc(strings.Fields(string(out)), func(k string) bool { return k == "sentinel-test:epoch" })
	if n := len(keys); n != 1 {
		t.Errorf("%d records under the prefix on the master, want 1", n)
	}
}
