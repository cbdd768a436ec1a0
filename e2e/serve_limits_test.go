package e2e

// The daemon's connection limits: max_connections, request_timeout_ms and
// the bound on buffered requests, through the real binary; the request
// deadline against the shutdown's.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
)

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
