//go:build linux

package e2e

// End-to-end tests of the binary at its edges: a stdout that stderr
// shares, configuration files that are not what they should be, log lines
// fed by clients, and signals to the short-lived commands.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"golang.org/x/sys/unix"
)

// runBinaryIn runs the binary with args, stdin, and extra environment,
// within a generous bound (a hang fails the test, it is no measure), and
// returns its exit status, stdout and stderr.
func runBinaryIn(t *testing.T, stdin string, environ []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, fixture.Binary(t), args...)
	cmd.Env = append(os.Environ(), environ...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%q did not end within 60 s", args)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// TestBinarySharedPipeRepliesOnly: with stdout and stderr one pipe (2>&1),
// the helper and the relay write nothing there but replies, and a bad
// flag's usage message does not reach it.
func TestBinarySharedPipeRepliesOnly(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	startServeWith(t, "", sock)
	cfg := fixture.WriteConfig(t, t.TempDir(), "[log]\nlevel = \"debug\"\n")
	tests := []struct {
		name  string
		args  []string
		code  int
		input bool
	}{
		{"helper", []string{"-config", cfg}, 0, true},
		{"connect", []string{"connect", "-config", cfg, "-socket", sock}, 0, true},
		{"helper, bad flag", []string{"-bogus"}, 2, false},
		{"connect, bad flag", []string{"connect", "-bogus"}, 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var in strings.Builder
			want := ""
			for i := range 6 {
				if !tc.input {
					break
				}
				if i%2 == 0 {
					in.WriteString(fixture.Line("auth:alice:" + fixture.Host + ":" + fixture.Token(t, "alice")))
					want += fixture.LineYes
				} else {
					in.WriteString(fixture.Line("auth:admin:" + fixture.Host + ":x"))
					want += fixture.LineNo
				}
			}
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			cmd := exec.Command(fixture.Binary(t), tc.args...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(in.String()), w, w
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			out, err := io.ReadAll(r) // to the process's end: it holds the only writer
			if err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != tc.code || string(out) != want {
				t.Fatalf("exit %d, the pipe read %q; want %d and %q", code, out, tc.code, want)
			}
		})
	}
}

// TestBinaryConfigFileRefused: a configuration that nests too deep, a
// device, a FIFO, a file too large, one others may write or that belongs
// to another user, or a secret file others may write: check-config, the
// helper, serve and the relay (for the files it reads) exit 1 at once with
// a message that says what is wrong.
func TestBinaryConfigFileRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	host := fmt.Sprintf("[hosts.%q]\ntoken_secret = %q\notp_seed = %q\n", fixture.Host, fixture.Secret, fixture.Seed)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := write("secret", fixture.Secret+"\n", 0o620)
	other := write("other.toml", host, 0o600)
	if err := os.Chown(other, 65534, -1); err != nil {
		other = "" // not root: no file of another user's to test with
	}
	tests := []struct {
		name, path, want string
		relay            bool // the relay reads it too
	}{
		{"10,000-deep table", write("deep.toml", "["+strings.Repeat("a.", 9999)+"a]\n"+host, 0o600), ":1: nested more than 8 levels deep", true},
		{"10,000-deep inline tables", write("inline.toml", "x = "+strings.Repeat("{a = ", 10000)+"1"+strings.Repeat("}", 10000)+"\n", 0o600), ":1: nested more than 8 levels deep", true},
		{"/dev/zero", "/dev/zero", "not a regular file", true},
		{"a FIFO", fifo, "not a regular file", true},
		{"2 MiB", write("big.toml", host+strings.Repeat("#\n", 1<<20), 0o600), "larger than 1048576 bytes", true},
		{"group-writable", write("gw.toml", host, 0o660), "writable by others than its owner (mode 0660)", true},
		{"another user's", other, "owned by user 65534", true},
		{"group-writable secret file", write("gws.toml", fmt.Sprintf("[hosts.%q]\ntoken_secret_file = %q\notp_seed = %q\n", fixture.Host, secret, fixture.Seed), 0o600),
			"token_secret_file: " + secret + ": writable by others than its owner (mode 0620)", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.path == "" {
				t.Skip("chown needs root")
			}
			code, out, _ := runBinaryIn(t, "", nil, "check-config", "-config", tc.path)
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Errorf("check-config: exit %d, %q; want 1 and %q", code, out, tc.want)
			}
			runs := [][]string{{"-config", tc.path}, {"serve", "-config", tc.path, "-socket", filepath.Join(t.TempDir(), "s")}}
			if tc.relay {
				runs = append(runs, []string{"connect", "-config", tc.path})
			}
			for _, args := range runs {
				code, out, errOut := runBinaryIn(t, "", nil, args...)
				if code != 1 || out != "" || !strings.Contains(errOut, tc.want) {
					t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1 and %q", args, code, out, errOut, tc.want)
				}
			}
		})
	}
	// The relay reads the default file ($TOKENAUTHD_CONFIG here) if it
	// can, and only then holds it to the same rules.
	code, _, errOut := runBinaryIn(t, "", []string{"TOKENAUTHD_CONFIG=" + filepath.Join(dir, "gw.toml")}, "connect")
	if code != 1 || !strings.Contains(errOut, "writable by others") {
		t.Errorf("connect on a group-writable default file: exit %d, %q", code, errOut)
	}
	code, _, errOut = runBinaryIn(t, "", []string{"TOKENAUTHD_CONFIG=" + filepath.Join(dir, "absent.toml")}, "connect")
	if code != 0 {
		t.Errorf("connect without its default file: exit %d, %q; want the defaults", code, errOut)
	}
}

// TestBinaryReloadRefusesDeepConfig: a SIGHUP does not load a file nested
// too deep into a running daemon; the previous configuration keeps serving.
func TestBinaryReloadRefusesDeepConfig(t *testing.T) {
	cfg := fixture.WriteConfig(t, t.TempDir(), "")
	sock := filepath.Join(t.TempDir(), "d.sock")
	p := startServe(t, cfg, sock)
	deep := "[" + strings.Repeat("a.", 9999) + "a]\n"
	if err := os.WriteFile(cfg, []byte(deep), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.log(), "configuration reload failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload failure logged:\n%s", p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.log(), "nested more than 8 levels deep") {
		t.Errorf("the reload failure does not say why:\n%s", p.log())
	}
	if !fixture.Auth(t, sock, "alice", fixture.Token(t, "alice")) {
		t.Error("the previous configuration no longer serves")
	}
}

// TestBinaryConfigWarnings: a configuration or secret file every user may
// read is loaded, with a warning in check-config's output and in the
// serving log.
func TestBinaryConfigWarnings(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(fixture.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	text := fmt.Sprintf("[hosts.%q]\ntoken_secret_file = %q\notp_seed = %q\n", fixture.Host, secret, fixture.Seed)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{secret, cfg} {
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ := runBinaryIn(t, "", nil, "check-config", "-config", cfg)
	for _, f := range []string{cfg, secret} {
		if want := "warning: " + f + ": readable by every user (mode 0644)"; code != 0 || !strings.Contains(out, want) {
			t.Errorf("check-config: exit %d, %q; want 0 and %q", code, out, want)
		}
	}
	code, out, errOut := runBinaryIn(t, fixture.Line("isuser:a:"+fixture.Host), nil, "-config", cfg)
	if code != 0 || out != fixture.LineYes || strings.Count(errOut, "readable by every user") != 2 {
		t.Errorf("helper: exit %d, stdout %q, log %q; want both files warned about", code, out, errOut)
	}
}

// TestBinaryLongUserNameLogCut: a refused request with a 60 KB user name
// logs a line of bounded size, marked as cut, on the helper's stderr.
func TestBinaryLongUserNameLogCut(t *testing.T) {
	user := strings.Repeat("u", 60_000)
	code, out, errOut := runBinaryIn(t, fixture.Frame("auth:"+user+":"+fixture.Host+":x"), nil, "-config", fixture.WriteConfig(t, t.TempDir(), ""))
	if code != 0 || out != string(fixture.FrameNo) {
		t.Fatalf("exit %d, stdout %x", code, out)
	}
	fixture.CheckCutLog(t, errOut, 60_000)
}

// TestBinaryExplainDiesOfSIGINT: explain waiting for the token on stdin
// (an open pipe) ends on SIGINT, as check-config and mint would: only the
// serving commands catch it.
func TestBinaryExplainDiesOfSIGINT(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	cmd := exec.Command(fixture.Binary(t), "explain", "-config", fixture.WriteConfig(t, t.TempDir(), ""), "alice@"+fixture.Host, "-")
	cmd.Stdin = r
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Kill(); <-exited }()
	// A line without its end: once explain has read it, it is past its
	// start-up and blocked reading the rest.
	if _, err := w.WriteString("123"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("explain does not read its stdin")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("explain still running 30 s after SIGINT")
	}
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Errorf("explain ended with %v, want death by SIGINT", cmd.ProcessState)
	}
}
