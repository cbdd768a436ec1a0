package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// runCmd runs the command line args in-process with stdin and returns its
// exit status, stdout and stderr.
func runCmd(t testing.TB, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), &cli.Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: os.Getenv}, args)
	return code, out.String(), errOut.String()
}

func TestRunVersion(t *testing.T) {
	code, out, errOut := runCmd(t, "", "version")
	if code != 0 || !regexp.MustCompile(`^tokenauthd \S+\n$`).MatchString(out) || errOut != "" {
		t.Errorf("version = %d, %q, %q", code, out, errOut)
	}
	for _, args := range [][]string{{"-x"}, {"extra"}} {
		if code, out, _ := runCmd(t, "", append([]string{"version"}, args...)...); code != 2 || out != "" {
			t.Errorf("version %v = %d, %q; want 2 and nothing", args, code, out)
		}
	}
}

// -h prints the usage on stderr, nothing on stdout, and exits 0, for the
// helper and every subcommand.
func TestRunHelp(t *testing.T) {
	names := []string{""}
	for n := range commands() {
		names = append(names, n)
	}
	for _, n := range names {
		args := []string{"-h"}
		if n != "" {
			args = []string{n, "-h"}
		}
		code, out, errOut := runCmd(t, "", args...)
		want := "usage: tokenauthd " + n
		if code != 0 || out != "" || !strings.HasPrefix(errOut, strings.TrimSpace(want)) {
			t.Errorf("tokenauthd %v = %d, stdout %q, stderr %q; want 0, nothing, %q...", args, code, out, errOut, want)
		}
	}
	// The helper's usage lists the subcommands.
	_, _, errOut := runCmd(t, "", "-h")
	for n := range commands() {
		if !strings.Contains(errOut, "  "+n+" ") {
			t.Errorf("usage lacks subcommand %q:\n%s", n, errOut)
		}
	}
	// A bad flag is exit status 2.
	if code, _, _ := runCmd(t, "", "-nope"); code != 2 {
		t.Errorf("tokenauthd -nope = %d, want 2", code)
	}
	if code, _, errOut := runCmd(t, "", "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown subcommand "frobnicate"`) {
		t.Errorf("tokenauthd frobnicate = %d, %q", code, errOut)
	}
}

func TestRunMint(t *testing.T) {
	cfg := fixture.RFCConfig(t, "")
	// RFC 6238: t=59 gives 94287082.
	code, out, errOut := runCmd(t, "", "mint", "-config", cfg, "-at", "59", "-nonce", "42", "alice@example.org")
	want := verifier.Sign([]byte("k"), "94287082", "42", "alice", "example.org") + "\n"
	if code != 0 || out != want || errOut != "" {
		t.Errorf("mint -at 59 = %d, %q, %q; want 0, %q", code, out, errOut, want)
	}
	// The configuration from the environment, a random 32-digit nonce.
	t.Setenv("TOKENAUTHD_CONFIG", cfg)
	code, out, _ = runCmd(t, "", "mint", "alice@example.org")
	if code != 0 || !regexp.MustCompile(`^[0-9]{40} [A-Za-z0-9+/]{43}=\n$`).MatchString(out) {
		t.Errorf("mint = %d, %q", code, out)
	}
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"alice"}, 2, "not user@host"},
		{[]string{"@example.org"}, 2, "not user@host"},
		{[]string{"a@b@c"}, 2, "not user@host"},
		{[]string{}, 2, "usage"},
		{[]string{"a@example.org", "b@example.org"}, 2, "usage"},
		{[]string{"-at", "yesterday", "alice@example.org"}, 2, "-at"},
		{[]string{"-at", "-5", "alice@example.org"}, 2, "-at"},
		{[]string{"-nonce", "12ab", "alice@example.org"}, 1, "nonce"},
		{[]string{"alice@example.com"}, 1, "unknown host"},
		{[]string{"-config", "/nonexistent.toml", "alice@example.org"}, 1, "/nonexistent.toml"},
	} {
		code, out, errOut := runCmd(t, "", append([]string{"mint"}, tt.args...)...)
		if code != tt.code || out != "" || !strings.Contains(errOut, tt.msg) {
			t.Errorf("mint %v = %d, %q, %q; want %d and %q", tt.args, code, out, errOut, tt.code, tt.msg)
		}
	}
}

func TestRunGenSecrets(t *testing.T) {
	code, out, errOut := runCmd(t, "", "gen-secrets", "chat.example")
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "[hosts.\"chat.example\"]\n") {
		t.Fatalf("gen-secrets = %d, %q, %q", code, out, errOut)
	}
	// The block is a working configuration.
	p := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(p, []byte(out), 0o600)
	c, err := setup.Load(p, config.Options{})
	if err != nil {
		t.Fatalf("gen-secrets output does not load: %v", err)
	}
	h := c.Hosts["chat.example"]
	if len(h.TokenSecrets[0]) < 32 || len(h.OTPSeeds[0]) < 32 {
		t.Errorf("short secrets: %d-byte secret, %d-character seed", len(h.TokenSecrets[0]), len(h.OTPSeeds[0]))
	}
	// A new host's users exist once they have logged in, not every name.
	if !c.Config.Hosts["chat.example"].IsUserSeen {
		t.Errorf("gen-secrets: the new host's isuser is not \"seen\":\n%s", out)
	}
	// Fresh every time.
	_, again, _ := runCmd(t, "", "gen-secrets", "chat.example")
	if again == out {
		t.Error("gen-secrets printed the same secrets twice")
	}
	if _, out, _ := runCmd(t, "", "gen-secrets"); !strings.HasPrefix(out, "[hosts.\"example.org\"]") {
		t.Errorf("gen-secrets without a host: %q", out)
	}
	for _, args := range [][]string{{"a@b"}, {"a", "b"}} {
		if code, out, _ := runCmd(t, "", append([]string{"gen-secrets"}, args...)...); code != 2 || out != "" {
			t.Errorf("gen-secrets %v = %d, %q; want 2 and nothing", args, code, out)
		}
	}
}

func TestRunCheckConfig(t *testing.T) {
	code, out, _ := runCmd(t, "", "check-config", "-config", fixture.RFCConfig(t, ""))
	if code != 0 || !strings.Contains(out, ": ok: 1 host(s), protocol auto") {
		t.Errorf("check-config of a good file = %d, %q", code, out)
	}
	bad := fixture.RFCConfig(t, "token_secret_file = \"/x\"\n")
	code, out, _ = runCmd(t, "", "check-config", "-config", bad)
	if code != 1 || !strings.Contains(out, "error") || !strings.Contains(out, "token_secret") || strings.Contains(out, "= \"k\"") {
		t.Errorf("check-config of a bad file = %d, %q", code, out)
	}
	if code, out, _ := runCmd(t, "", "check-config", "-config", "/nonexistent.toml"); code != 1 || !strings.Contains(out, "/nonexistent.toml") {
		t.Errorf("check-config of a missing file = %d, %q", code, out)
	}
}

// The stdin/stdout helper, in-process, in both framings: exact replies,
// refusals logged with their reason and never the token.
func TestRunStdio(t *testing.T) {
	cfg := fixture.RFCConfig(t, "[hosts.\"other.example\"]\ntoken_secret = \"o\"\notp_seed = \"JBSWY3DPEHPK3PXP\"\nisuser = false\n")
	mint := func(jid string) string {
		code, out, errOut := runCmd(t, "", "mint", "-config", cfg, jid)
		if code != 0 {
			t.Fatalf("mint: %s", errOut)
		}
		return strings.TrimSuffix(out, "\n")
	}
	for _, mode := range []string{"ejabberd", "generic"} {
		alice, bob := mint("alice@example.org"), mint("bob@example.org")
		reqs := []struct {
			body string
			yes  bool
		}{
			{"auth:alice:example.org:" + alice, true},       // fresh
			{"auth:alice:example.org:" + alice, false},      // replayed
			{"auth:alice:example.org:" + bob, false},        // bob's
			{"auth:alice:example.org:" + bob + ":x", false}, // with a colon
			{"auth:alice:example.com:" + bob, false},        // unknown host
			{"isuser:alice:example.org", true},              // isuser = true
			{"isuser:alice:other.example", false},           // isuser = false
			{"setpass:alice:example.org:" + bob, false},     // never
			{"auth:alice:example.org", false},               // malformed
			{"bogus", false},                                // unknown command
			{"auth:bob:example.org:" + bob, true},           // bob's, fresh
		}
		var in, want strings.Builder
		for _, r := range reqs {
			if mode == "ejabberd" {
				in.WriteString(fixture.Frame(r.body))
				want.WriteString(protocol.Reply(protocol.Ejabberd, r.yes))
			} else {
				in.WriteString(fixture.Line(r.body))
				want.WriteString(protocol.Reply(protocol.Generic, r.yes))
			}
		}
		// auto detects both.
		for _, flagMode := range []string{mode, "auto"} {
			if flagMode == "auto" {
				alice2, bob2 := mint("alice@example.org"), mint("bob@example.org")
				// Fresh tokens of the same lengths: frames stay valid.
				s := strings.NewReplacer(alice, alice2, bob, bob2).Replace(in.String())
				in.Reset()
				in.WriteString(s)
				alice, bob = alice2, bob2
			}
			code, out, errOut := runCmd(t, in.String(), "-config", cfg, "-protocol", flagMode)
			if code != 0 || out != want.String() {
				t.Errorf("%s/%s: exit %d, stdout %q, want 0, %q\nstderr:\n%s", mode, flagMode, code, out, want.String(), errOut)
			}
			for _, reason := range []string{"reason=replayed", "reason=bad_signature", "reason=unknown_host",
				"reason=unsupported_command", "reason=bad_request", "tokenauthd started"} {
				if !strings.Contains(errOut, reason) {
					t.Errorf("%s/%s: stderr lacks %q:\n%s", mode, flagMode, reason, errOut)
				}
			}
			for _, tok := range []string{alice, bob} {
				decimal, sig, _ := strings.Cut(tok, " ")
				if strings.Contains(errOut, decimal[8:]) || strings.Contains(errOut, sig[:20]) {
					t.Errorf("%s/%s: stderr holds a token:\n%s", mode, flagMode, errOut)
				}
			}
		}
	}
}

// A bad configuration is the only non-zero exit of the helper.
func TestRunStdioBadConfig(t *testing.T) {
	code, out, errOut := runCmd(t, fixture.Frame("isuser:a:example.org"), "-config", fixture.RFCConfig(t, "isusr = true\n"))
	if code != 1 || out != "" || !strings.Contains(errOut, "isusr") {
		t.Errorf("bad config: %d, %q, %q", code, out, errOut)
	}
	code, out, _ = runCmd(t, "", "-config", fixture.RFCConfig(t, ""), "-protocol", "xmpp")
	if code != 1 || out != "" {
		t.Errorf("bad -protocol: %d, %q", code, out)
	}
}

// A peer that stops reading is no reason for a non-zero exit.
func TestRunStdioWriteError(t *testing.T) {
	var errOut bytes.Buffer
	code := run(context.Background(), &cli.Env{Stdin: strings.NewReader(fixture.Frame("isuser:a:example.org")),
		Stdout: failWriter{}, Stderr: &errOut}, []string{"-config", fixture.RFCConfig(t, "")})
	if code != 0 || !strings.Contains(errOut.String(), "stream ended") {
		t.Errorf("write error: %d, %q", code, errOut.String())
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// A signal (the context's end) stops the helper even while it waits for
// input, with exit status 0.
func TestRunStdioStopsOnSignal(t *testing.T) {
	inR, inW := io.Pipe()
	defer inW.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &cli.Env{Stdin: inR, Stdout: &out, Stderr: &errOut}, []string{"-config", fixture.RFCConfig(t, "")})
	}()
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit status %d on a signal, want 0", code)
	}
}

// TestSharedStdoutStderr: when stderr is the very file stdout is (one
// pipe, as with 2>&1), only replies reach it, and the log goes to the
// system log, each line at its level's priority (in-process).
func TestSharedStdoutStderr(t *testing.T) {
	sock, msgs := listenSysLog(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cfg := fixture.RFCConfig(t, "[log]\nlevel = \"debug\"\n")
	in := "isuser:a:example.org\nauth:admin:example.org:x\nauth:" + strings.Repeat("u", 3000) + ":example.org:x\n"
	e := &cli.Env{Stdin: strings.NewReader(in), Stdout: w, Stderr: w, SysLog: sock}
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), e, []string{"-config", cfg, "-protocol", "generic"})
		w.Close()
	}()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 || string(out) != "1\n0\n0\n" {
		t.Fatalf("exit %d, the shared pipe read %q, want only the replies", code, out)
	}
	// LOG_DAEMON (3) * 8 + LOG_INFO (6) = 30.
	want := []string{"<30>", "tokenauthd started", "<30>", "refused", "user=admin", "<30>", "refused", logs.CutMarker + "3000]"}
	var got []string
	for len(want) > 0 {
		select {
		case m := <-msgs:
			got = append(got, m)
			for len(want) > 0 && strings.Contains(m, want[0]) {
				m = m[strings.Index(m, want[0])+len(want[0]):]
				want = want[1:]
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the system log got %q; still missing %q", got, want)
		}
	}
}

// TestSharedStdoutStderrUsage: a bad flag's usage message does not reach a
// stdout that stderr shares either.
func TestSharedStdoutStderrUsage(t *testing.T) {
	for _, args := range [][]string{{"-bogus"}, {"connect", "-bogus"}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		code := run(context.Background(), &cli.Env{Stdin: strings.NewReader(""), Stdout: w, Stderr: w, SysLog: "/nonexistent/log"}, args)
		w.Close()
		out, _ := io.ReadAll(r)
		r.Close()
		if code != 2 || len(out) != 0 {
			t.Errorf("%q: exit %d, stdout %q; want 2 and nothing", args, code, out)
		}
	}
}

// listenSysLog listens on a datagram socket standing for /dev/log and
// returns its path and the channel of the messages it receives.
func listenSysLog(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		b := make([]byte, 65536)
		for {
			n, err := c.Read(b)
			if err != nil {
				return
			}
			ch <- string(b[:n])
		}
	}()
	return path, ch
}
