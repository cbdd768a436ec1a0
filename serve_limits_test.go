package main

// The daemon's connection limits: max_connections, request_timeout_ms and
// the bound on buffered requests, through the real binary; the request
// deadline against the shutdown's.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// limitsDaemon runs the binary's daemon with [daemon] extra and metrics,
// and waits until its only connection so far (waitReady's) is gone.
func limitsDaemon(t *testing.T, daemonKeys string) (p *serveProc, metricsURL string) {
	t.Helper()
	port := freePort(t)
	sock := filepath.Join(t.TempDir(), "d.sock")
	p = startServeProc(t, fmt.Sprintf("[daemon]\n%s\n[metrics]\nlisten = \"127.0.0.1:%d\"\n", daemonKeys, port), sock)
	metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	waitPort(t, port, 10*time.Second)
	waitFor(t, "no connection open", func() bool { return scrape(t, metricsURL)["tokenauthd_connections"] == 0 })
	return p, metricsURL
}

// dialAsk dials sock and asks isuser in ejabberd framing; it returns the
// connection and whether the request was answered yes.
func dialAsk(t *testing.T, sock string) (net.Conn, error) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, askIsUser(c)
}

// askIsUser asks isuser for a user of testHost and checks the yes.
func askIsUser(c net.Conn) error {
	if _, err := c.Write(frame("isuser:alice:" + testHost)); err != nil {
		return err
	}
	reply, err := readReply(c, protocol.Ejabberd)
	if err != nil {
		return err
	}
	if !bytes.Equal(reply, frameYes) {
		return fmt.Errorf("reply %x", reply)
	}
	return nil
}

// closedByPeer reports whether the daemon closed c: a read ends without
// a byte and without hitting c's (generous) deadline.
func closedByPeer(c net.Conn) bool {
	n, err := c.Read(make([]byte, 1))
	return n == 0 && (err == io.EOF || errors.Is(err, syscall.ECONNRESET))
}

// Beyond max_connections a connection is closed at once, counted and
// logged; the open ones still answer; once one closes, a new one is let in.
func TestServeMaxConnections(t *testing.T) {
	p, url := limitsDaemon(t, "max_connections = 4")
	var open []net.Conn
	for i := 0; i < 4; i++ {
		c, err := dialAsk(t, p.sock)
		if err != nil {
			t.Fatalf("connection %d of 4: %v", i+1, err)
		}
		open = append(open, c)
	}
	for i := 0; i < 2; i++ {
		c, err := dialAsk(t, p.sock)
		if err == nil {
			t.Fatalf("connection %d over max_connections was answered", i+1)
		}
		if !closedByPeer(c) {
			t.Errorf("connection %d over max_connections: not closed by the daemon", i+1)
		}
	}
	for i, c := range open {
		if err := askIsUser(c); err != nil {
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
	waitFor(t, "the closed connection to be gone", func() bool { return scrape(t, url)["tokenauthd_connections"] == 3 })
	if _, err := dialAsk(t, p.sock); err != nil {
		t.Errorf("a connection after one closed: %v", err)
	}
}

// A request whose first byte has arrived must arrive whole within
// request_timeout_ms, in either framing, or the connection is closed; an
// idle connection stays open, however long, before its first request and
// between requests.
func TestServeRequestTimeout(t *testing.T) {
	p, url := limitsDaemon(t, "request_timeout_ms = 200")
	idle, err := dialAsk(t, p.sock) // idle between requests
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := net.Dial("unix", p.sock) // idle before its first request
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for _, part := range []string{ejFrame("isuser:alice:" + testHost)[:7], "isuser:al", ejFrame("isuser:alice:" + testHost)[:1]} {
		c, err := net.Dial("unix", p.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, part); err != nil {
			t.Fatal(err)
		}
		if !closedByPeer(c) {
			t.Errorf("%q then nothing: the connection was not closed", part)
		}
	}
	// Both idle connections have waited longer than the stalled ones.
	for name, c := range map[string]net.Conn{"between requests": idle, "before its first": fresh} {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := askIsUser(c); err != nil {
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
	v := testMinter(t)
	c, err := dialAsk(t, p.sock)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{maxDaemonRequest + 1, 0xffff} {
		go c.Write(frame(longAuthBody(n, testHost)))
		reply, err := readReply(c, protocol.Ejabberd)
		if err != nil || !bytes.Equal(reply, frameNo) {
			t.Fatalf("%d-byte frame: reply %x, %v; want %x", n, reply, err, frameNo)
		}
		if r := askFrame(t, c, "auth:alice:"+testHost+":"+mintT(t, v, "alice")); !bytes.Equal(r, frameYes) {
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

// The watchdog's probe gets in even when max_connections are open: a
// daemon at its limit is busy, not hung.
func TestServeWatchdogProbeAtLimit(t *testing.T) {
	d, sock, _ := startDaemonWith(t, filepath.Join(t.TempDir(), "d.sock"), "[daemon]\nmax_connections = 1\n", nil, nil)
	if _, err := dialAsk(t, sock); err != nil {
		t.Fatal(err)
	}
	if c, err := dialAsk(t, sock); err == nil || !closedByPeer(c) {
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
