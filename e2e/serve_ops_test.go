package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
)

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
	cfg, err := config.Parse("x.toml", []byte(fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil)))
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
