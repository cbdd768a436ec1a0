//go:build linux

package e2e

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

	"github.com/creack/pty"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/verifier"
	"golang.org/x/sys/unix"
)

// ptyProc is the binary run as prosody-modules' mod_auth_external_insecure
// runs its helper (through lpty): one pseudo-terminal as stdin, stdout and
// stderr, its controlling terminal, echo off.
type ptyProc struct {
	cmd    *exec.Cmd
	master *os.File
	r      *ptyReader
	exited chan struct{} // closed when the process has ended
}

func startOnPTY(t *testing.T, args ...string) *ptyProc {
	t.Helper()
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	p := &ptyProc{master: master, r: newPTYReader(master), exited: make(chan struct{})}
	p.cmd = exec.Command(fixture.Binary(t), args...)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = tty, tty, tty
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// stop ends the process with SIGTERM and fails t if anything but the
// replies already read reached the terminal, up to the process's end.
func (p *ptyProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20 s after SIGTERM")
	}
	// With the last slave descriptor closed, the master reads what is
	// left, then EIO.
	for {
		select {
		case b, ok := <-p.r.ch:
			if !ok {
				if len(p.r.buf) > 0 {
					t.Fatalf("the terminal read more than the replies: %q", p.r.buf)
				}
				return
			}
			p.r.buf = append(p.r.buf, b...)
		case <-time.After(20 * time.Second):
			t.Fatal("the terminal is still open 20 s after the process ended")
		}
	}
}

// TestBinaryTerminalRepliesOnly: on one terminal for stdin, stdout and
// stderr, at every log level, the stdin/stdout helper and the relay answer
// valid, wrong, valid, wrong, valid, wrong with exactly 1, 0, 1, 0, 1, 0,
// and nothing else reaches the terminal: a log line there would be read as
// the next reply, and every later query would get the previous one's
// answer (admin / x accepted).
func TestBinaryTerminalRepliesOnly(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	startServeWith(t, "", sock)
	for _, command := range []string{"helper", "connect"} {
		for _, level := range []string{"debug", "info", "warn", "error"} {
			t.Run(command+"/"+level, func(t *testing.T) {
				cfg := fixture.WriteConfig(t, t.TempDir(), "[log]\nlevel = \""+level+"\"\n")
				args := []string{"-config", cfg, "-protocol", "generic"}
				if command == "connect" {
					args = append([]string{"connect", "-socket", sock}, args...)
				}
				p := startOnPTY(t, args...)
				for i := range 6 {
					query, want := fixture.Line("auth:admin:"+fixture.Host+":x"), onlcr(false)
					if i%2 == 0 {
						query, want = fixture.Line("auth:alice:"+fixture.Host+":"+fixture.Token(t, "alice")), onlcr(true)
					}
					if _, err := p.master.Write([]byte(query)); err != nil {
						t.Fatal(err)
					}
					p.r.expect(t, fmt.Sprintf("query %d", i+1), want)
				}
				p.stop(t)
			})
		}
	}
}

// End-to-end tests of the binary at its edges: a stdout that stderr
// shares, configuration files that are not what they should be, log lines
// fed by clients, and signals to the short-lived commands.

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
	if os.Geteuid() != 0 || os.Chown(other, 65534, -1) != nil {
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
				fixture.RequireRoot(t, "it gives a file to another user")
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

// ptyReader collects what the master side of a pseudo-terminal reads.
type ptyReader struct {
	ch  chan []byte
	buf []byte
}

func newPTYReader(f *os.File) *ptyReader {
	r := &ptyReader{ch: make(chan []byte, 64)}
	go func() {
		defer close(r.ch)
		for {
			b := make([]byte, 4096)
			n, err := f.Read(b)
			if n > 0 {
				r.ch <- b[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// onlcr returns a generic reply as a terminal passes it on: its ONLCR
// turns the '\n' into "\r\n".
func onlcr(yes bool) string {
	return strings.ReplaceAll(protocol.Reply(protocol.Generic, yes), "\n", "\r\n")
}

// expect fails the test unless the next bytes read are exactly want.
func (r *ptyReader) expect(t *testing.T, what, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for len(r.buf) < len(want) {
		select {
		case b, ok := <-r.ch:
			if !ok {
				t.Fatalf("%s: the terminal closed after %q, want %q", what, r.buf, want)
			}
			r.buf = append(r.buf, b...)
		case <-timeout:
			t.Fatalf("%s: read %q, want %q", what, r.buf, want)
		}
	}
	if got := string(r.buf[:len(want)]); got != want {
		t.Fatalf("%s: read %q, want %q", what, r.buf, want)
	}
	r.buf = r.buf[len(want):]
}

// TestStdioOverPTY runs the helper as mod_auth_external_insecure does: on a
// pseudo-terminal that is its controlling terminal, with the terminal's
// default settings (echo, line editing, signal characters, CR to NL) when
// it starts.
func TestStdioOverPTY(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a long run of the built helper on a pseudo-terminal")
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.toml")
	cfgText := fmt.Sprintf("[hosts.\"localhost\"]\ntoken_secret = %q\notp_seed = %q\n", prosodySecret, prosodySeed)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := setup.Load(cfgPath, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	minter, err := cfg.NewOffline()
	if err != nil {
		t.Fatal(err)
	}
	token := func(user string) string {
		nonce, err := verifier.NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		tok, err := minter.Mint(user, "localhost", time.Now(), nonce)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	r := newPTYReader(ptmx)

	// A query written before the helper has started. The terminal echoes
	// it at once, its newline as "\r\n" (ONLCR): a reader such as
	// mod_auth_external_insecure sees the echo first. The helper cannot
	// take that back; it must still answer the query itself, once.
	early := token("alice")
	if _, err := ptmx.Write([]byte("auth:alice:localhost:" + early + "\n")); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "echo of the query written before the helper started", "auth:alice:localhost:"+early+"\r\n")

	var stderr bytes.Buffer
	cmd := exec.Command(fixture.Binary(t), "-config", cfgPath)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, &stderr
	// Its own session, with the terminal as its controlling terminal:
	// signal characters would reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		ptmx.Close() // the helper reads EIO (and gets SIGHUP) and ends
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("helper's stderr:\n%s", stderr.String())
		}
		if strings.Contains(stderr.String(), early) {
			t.Errorf("a token appears in the helper's log")
		}
	}()
	r.expect(t, "answer to the early query", onlcr(true))

	// From now on there is no echo: each line below is answered by
	// exactly its reply and nothing else, or the next expectation fails.
	// The lines are typed as they are, by hand: some end in CRLF, as a
	// terminal's may.
	second := token("alice")
	for _, c := range []struct {
		name, query string
		want        bool
	}{
		{"replay of the early token", "auth:alice:localhost:" + early + "\n", false},
		{"fresh token, CRLF line", "auth:alice:localhost:" + second + "\r\n", true},
		{"same again, LF line", "auth:alice:localhost:" + second + "\n", false},
		{"isuser", "isuser:alice:localhost\r\n", true},
		// A CR inside a line is data, not a line end: one answer.
		{"CR inside the password", "auth:alice:localhost:pass\rword\n", false},
		// Terminal control characters are data too: no signal (^C ^\ ^Z),
		// no line editing (^U ^W DEL), no end of file (^D), no flow
		// control (^S ^Q), no literal-next (^V).
		{"control characters", "auth:alice:localhost:\x03\x1c\x1a\x15\x17\x7f\x04\x13\x11\x16x\n", false},
		{"still serving, in step", "auth:bob:localhost:" + token("bob") + "\n", true},
	} {
		if _, err := ptmx.Write([]byte(c.query)); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		r.expect(t, c.name, onlcr(c.want))
	}
	select {
	case err := <-exited:
		t.Fatalf("the helper exited while serving: %v", err)
	default:
	}
}
