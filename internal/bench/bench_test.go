package bench

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// nothingHelper builds bench/nothing, the do-nothing helper.
func nothingHelper(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nothing")
	if out, err := exec.Command("go", "build", "-o", path, "github.com/tokenauthd/tokenauthd/bench/nothing").CombinedOutput(); err != nil {
		t.Fatalf("go build ./bench/nothing: %v\n%s", err, out)
	}
	return path
}

// benchRow returns the table row of the named helper.
func benchRow(t *testing.T, out, name string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| "+name+" |") {
			cells := strings.Split(strings.Trim(line, "| "), " | ")
			if len(cells) != 14 {
				t.Fatalf("row %q has %d cells, want 14", line, len(cells))
			}
			return cells
		}
	}
	t.Fatalf("no row for %s in:\n%s", name, out)
	return nil
}

func TestBench(t *testing.T) {
	bin, nothing := fixture.Binary(t), nothingHelper(t)
	// Each case sends 20 tokens in lockstep and 50 pipelined (twice each
	// with -replay), over 3 hosts and 4 users.
	tests := []struct {
		name     string
		args     []string
		wantCode int
		// accepted and replays-refused cells, per helper
		want map[string][2]string
		// in stderr
		wantErr string
	}{{
		// tokenauthd takes every fresh token once and refuses every
		// second copy; the do-nothing helper takes the copies too, which
		// the bench reports as a failure.
		name:     "ejabberd framing with replays",
		args:     []string{"-replay", "-helper", "tokenauthd=" + bin, "-helper", "nothing=" + nothing},
		wantCode: 1,
		want:     map[string][2]string{"tokenauthd": {"70/70", "70/70"}, "nothing": {"70/70", "0/70"}},
		wantErr:  "nothing: refused 0 of 70 replayed tokens",
	}, {
		// Generic lines, two runs, no replays: all accepted.
		name:     "generic framing",
		args:     []string{"-protocol", "generic", "-runs", "2", "-helper", "tokenauthd=" + bin + " -protocol generic", "-helper", "nothing=" + nothing},
		wantCode: 0,
		want:     map[string][2]string{"tokenauthd": {"70/70", "–"}, "nothing": {"70/70", "–"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"-hosts", "3", "-users", "4", "-lockstep", "20", "-pipelined", "50"}, tt.args...)
			code := Run(context.Background(), &cli.Env{Stdout: &stdout, Stderr: &stderr}, args)
			if code != tt.wantCode {
				t.Fatalf("bench exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			for name, want := range tt.want {
				row := benchRow(t, stdout.String(), name)
				if got := [2]string{row[11], row[12]}; got != want {
					t.Errorf("%s: accepted, refused = %q, want %q", name, got, want)
				}
				if row[1] == "–" || row[7] == "–" || row[9] == "–" || !strings.HasSuffix(row[10], " ms") {
					t.Errorf("%s: row %q lacks a latency, rate, lockstep CPU or first reply", name, row)
				}
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

// Over n runs each of n targets runs first once, and every run runs each
// target once.
func TestRunOrder(t *testing.T) {
	for n := 1; n <= 5; n++ {
		firsts := map[int]int{}
		for r := range n {
			order := runOrder(r, n)
			seen := map[int]bool{}
			for _, i := range order {
				seen[i] = true
			}
			if len(order) != n || len(seen) != n {
				t.Errorf("run %d of %d targets: order %v", r, n, order)
			}
			firsts[order[0]]++
		}
		if len(firsts) != n {
			t.Errorf("%d targets over %d runs: first %v", n, n, firsts)
		}
	}
}

// Within a run the targets take turns with the lockstep tokens, -chunk
// each, each round in another order, after every target's first request;
// the pipelined tokens follow, target after target. A target given its
// own configuration (-target-config) gets tokens for its hosts.
func TestLockstepTakesTurns(t *testing.T) {
	dir := t.TempDir()
	three := filepath.Join(dir, "three.toml")
	if err := writeBenchConfig(context.Background(), three, 3); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string               // the target of each auth request, in order
	hosts := map[string][]string{} // the hosts of each target's requests
	for _, name := range []string{"a", "b"} {
		l, err := net.Listen("unix", filepath.Join(dir, name+".sock"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		srv := &protocol.Server{Mode: protocol.Ejabberd, Handler: protocol.HandlerFunc(func(_ context.Context, req protocol.Request) bool {
			if req.Command == protocol.CmdAuth {
				mu.Lock()
				got = append(got, name)
				if !slices.Contains(hosts[name], req.Server) {
					hosts[name] = append(hosts[name], req.Server)
				}
				mu.Unlock()
			}
			return true
		})}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); srv.Serve(context.Background(), c, c) }()
			}
		}()
	}
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), &cli.Env{Stdout: &stdout, Stderr: &stderr}, []string{"-lockstep", "25", "-chunk", "10", "-pipelined", "3",
		"-socket", "a=" + filepath.Join(dir, "a.sock"), "-socket", "b=" + filepath.Join(dir, "b.sock"), "-target-config", "b=" + three})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	var turns []string
	for i, name := range got {
		if i == 0 || name != got[i-1] || len(turns) > 0 && strings.Count(turns[len(turns)-1], name) == 10 {
			turns = append(turns, "")
		}
		turns[len(turns)-1] += name
	}
	want := []string{"aaaaaaaaaa", "bbbbbbbbbb", "bbbbbbbbbb", "aaaaaaaaaa", "aaaaa", "bbbbb", "aaa", "bbb"}
	if !slices.Equal(turns, want) {
		t.Errorf("requests by target: %q, want %q", turns, want)
	}
	if len(hosts["a"]) != 1 || len(hosts["b"]) != 3 {
		t.Errorf("hosts by target: %q, want 1 for a (-hosts) and 3 for b (-target-config)", hosts)
	}
	if !strings.Contains(stdout.String(), "b: 3 hosts") {
		t.Errorf("the table does not say b's hosts:\n%s", stdout.String())
	}
}

// -write-config writes the configuration a run of -hosts hosts makes, for
// the daemons a comparison starts, and runs nothing.
func TestBenchWriteConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	var stderr bytes.Buffer
	if code := Run(context.Background(), &cli.Env{Stderr: &stderr}, []string{"-hosts", "3", "-write-config", path}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Hosts) != 3 {
		t.Errorf("%d hosts, want 3", len(cfg.Hosts))
	}
	for i := range 3 {
		if _, ok := cfg.Hosts[benchHost(i)]; !ok {
			t.Errorf("no host %s", benchHost(i))
		}
	}
}

// A fresh configuration of thousands of hosts loads, although it cannot
// hold their secrets inline (a configuration file is at most 1 MiB, 7,500
// hosts' inline secrets 1.1 MB): they are credential files ("%d/") in the
// directory PATH.d.
func TestBenchManyHosts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	var stderr bytes.Buffer
	if code := Run(context.Background(), &cli.Env{Stderr: &stderr}, []string{"-hosts", "7500", "-write-config", path}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	m, err := newMinter(path, config.Options{Credentials: path + ".d"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.hosts) != 7500 {
		t.Errorf("%d hosts, want 7500", len(m.hosts))
	}
	user, host, tok := m.token(7499)
	if r := m.v.Check(context.Background(), user, host, tok); !r.OK() {
		t.Errorf("a token of the last host: %v", r.Reason)
	}
}

// TestBenchPyHelper checks that the Python baseline really verifies tokens:
// it takes fresh ones and refuses forged or misdirected ones.
func TestBenchPyHelper(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:pyotp")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	if err := writeBenchConfig(context.Background(), cfg, 2); err != nil {
		t.Fatal(err)
	}
	m, err := newMinter(cfg, config.Options{}, 3)
	if err != nil {
		t.Fatal(err)
	}
	user, host, tok := m.token(0)
	sig := tok[strings.IndexByte(tok, ' ')+1:]
	forged := tok[:len(tok)-len(sig)] + strings.Repeat("A", len(sig)-1) + "="
	for _, mode := range []protocol.Mode{protocol.Ejabberd, protocol.Generic} {
		b := &bencher{mode: mode, config: cfg, dir: dir}
		c, stop, err := b.spawn(context.Background(), benchTarget{name: "python", argv: []string{"../../bench/pyhelper.py"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			body string
			want bool
		}{
			{"isuser:" + user + ":" + host, true},
			{"auth:" + user + ":" + host + ":" + tok, true},
			{"auth:" + user + ":" + host + ":" + forged, false},
			{"auth:" + user + "x:" + host + ":" + tok, false},        // another user
			{"auth:" + user + ":" + benchHost(1) + ":" + tok, false}, // another host
			{"auth:" + user + ":nowhere.test:" + tok, false},
			{"setpass:" + user + ":" + host + ":x", false},
		} {
			got, err := c.roundTrip(mode, benchFrame(mode, tc.body))
			if err != nil {
				t.Fatalf("%s: %s: %v", mode, tc.body[:12], err)
			}
			if got != tc.want {
				t.Errorf("%s: pyhelper answered %v to %.30q..., want %v", mode, got, tc.body, tc.want)
			}
		}
		if err := stop(); err != nil {
			t.Errorf("%s: %v", mode, err)
		}
	}
}

// TestRoundTripUnasked: a helper that answers one request twice, or sends
// anything after its reply, is out of step: its next reply could be
// this one's. roundTrip says so instead of counting the reply.
func TestRoundTripUnasked(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for _, mode := range []protocol.Mode{protocol.Ejabberd, protocol.Generic} {
		yes := protocol.Reply(mode, true)
		for _, out := range []string{yes + yes, yes + "\x00"} {
			c := &conn{w: null, r: bufio.NewReaderSize(strings.NewReader(out), 64<<10)}
			if ok, err := c.roundTrip(mode, benchFrame(mode, "isuser:a:b")); err == nil {
				t.Errorf("%v: %q after a request: %v, no error", mode, out, ok)
			}
		}
	}
}
