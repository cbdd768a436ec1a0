package e2e

import (
	"bufio"
	"context"
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
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
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
	cfg, err := config.Parse("x.toml", []byte(fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil)), config.Options{})
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
func testVerifier(t *testing.T, extra string) (*verifier.Verifier, verifier.Params) {
	t.Helper()
	cfg, err := config.Load(fixture.WriteConfig(t, t.TempDir(), extra), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := config.NewVerifier(cfg, replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	return v, cfg.Params
}

// TestAmnesiaMemoryRestart: a memory store without journal starts empty.
// By default a token accepted before a restart is accepted again after it,
// while it is inside its window: what the documentation says. With
// refuse_after_start the restarted daemon refuses it, as every token that
// could have been accepted before it started, and logs until when. Steps
// of 3 s keep the wait for the first refusals to end short.
func TestAmnesiaMemoryRestart(t *testing.T) {
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
