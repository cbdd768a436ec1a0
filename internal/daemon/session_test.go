package daemon

// In-process sessions of the stdin/stdout helper, and configuration files
// for tests.

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// session is the stdin/stdout helper run in-process with the generic
// protocol, its reload signal injected.
type session struct {
	t      testing.TB
	in     *io.PipeWriter
	out    *bufio.Reader
	stderr *fixture.Buffer
	hup    chan os.Signal
	done   chan int
}

func startSession(t testing.TB, cfgPath string, extra ...string) *session {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{t: t, in: inW, out: bufio.NewReader(outR), stderr: &fixture.Buffer{},
		hup: make(chan os.Signal), done: make(chan int, 1)}
	e := &cli.Env{Stdin: inR, Stdout: outW, Stderr: s.stderr, Reload: s.hup}
	args := append([]string{"-config", cfgPath, "-protocol", "generic"}, extra...)
	go func() {
		s.done <- RunStdio(context.Background(), e, args)
		outW.Close()
	}()
	t.Cleanup(func() { s.close() })
	return s
}

// ask sends one request line and returns the reply ("1" or "0").
func (s *session) ask(req string) string {
	s.t.Helper()
	if _, err := io.WriteString(s.in, fixture.Line(req)); err != nil {
		s.t.Fatalf("write %q: %v (stderr: %s)", req, err, s.stderr)
	}
	yes, err := protocol.ReadReply(s.out, protocol.Generic)
	if err != nil {
		s.t.Fatalf("reply to %q: %v (stderr: %s)", req, err, s.stderr)
	}
	return fixture.YesNo(yes)
}

// auth reports whether the helper accepts the token for user@host.
func (s *session) auth(user, host, token string) bool {
	s.t.Helper()
	return s.ask("auth:"+user+":"+host+":"+token) == "1"
}

// reload signals a reload and waits for its outcome in the log.
func (s *session) reload() {
	s.t.Helper()
	n := s.reloads()
	s.hup <- nil
	fixture.WaitFor(s.t, "the reload's log line", func() bool { return s.reloads() > n })
}

func (s *session) reloads() int {
	return strings.Count(s.stderr.String(), "configuration reload")
}

func (s *session) close() int {
	if s.in == nil {
		return -1
	}
	s.in.Close()
	s.in = nil
	select {
	case code := <-s.done:
		return code
	case <-time.After(20 * time.Second):
		s.t.Fatal("helper did not end at end of input")
	}
	return -1
}

// runCmd runs check-config, or else the stdin/stdout helper, in-process
// with stdin, as the command line args would, and returns its exit status,
// stdout and stderr.
func runCmd(t testing.TB, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &cli.Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: os.Getenv}
	if len(args) > 0 && args[0] == "check-config" {
		return RunCheckConfig(t.Context(), e, args[1:]), out.String(), errOut.String()
	}
	return RunStdio(t.Context(), e.KeepRepliesAlone(), args), out.String(), errOut.String()
}
