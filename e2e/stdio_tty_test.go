//go:build linux

package e2e

import (
	"bytes"
	"fmt"
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
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

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
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.toml")
	cfgText := fmt.Sprintf("[hosts.\"localhost\"]\ntoken_secret = %q\notp_seed = %q\n", prosodySecret, prosodySeed)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	minter, err := config.NewVerifier(cfg, replay.NewMemory(replay.MemoryOptions{TTL: time.Minute}))
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
