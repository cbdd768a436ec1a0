//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
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
