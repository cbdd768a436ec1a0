package main

// In-process sessions of the stdin/stdout helper, and configuration files
// for tests.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// Test secrets and seeds. Each is distinctive so that a log leak is found.
const (
	secretA = "secret-A-7f3e9c1d5b2a8e4f6c0d"
	secretB = "secret-B-2c8e4a6f0b9d1e3c5a7b"
	secretH = "secret-H-9a1b2c3d4e5f60718293"
	seedA   = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	seedB   = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	seedH   = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until cond holds, failing after a generous bound: it
// orders the test's steps and measures nothing.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeConfig writes a configuration file (atomically, as an admin's
// editor or configuration manager would) and returns its path.
func writeConfig(t testing.TB, path, body string) string {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// hostBlock returns a [hosts."name"] section.
func hostBlock(name, secret, seed string, oldSecrets, oldSeeds []string) string {
	q := func(ss []string) string {
		parts := make([]string, len(ss))
		for i, s := range ss {
			parts[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprintf("[hosts.%q]\ntoken_secret = %q\notp_seed = %q\nold_token_secrets = %s\nold_otp_seeds = %s\n",
		name, secret, seed, q(oldSecrets), q(oldSeeds))
}

// mintWith mints a token for user@host with one secret and seed, as the
// application would.
func mintWith(t testing.TB, secret, seed, user, host string) string {
	t.Helper()
	return mintAt(t, secret, seed, user, host, time.Now())
}

// mintAt mints a token valid at the given time.
func mintAt(t testing.TB, secret, seed, user, host string, at time.Time) string {
	t.Helper()
	v, err := verifier.New(verifier.Config{
		Params: verifier.DefaultParams(),
		Hosts:  map[string]verifier.Host{host: {TokenSecrets: [][]byte{[]byte(secret)}, OTPSeeds: []string{seed}}},
		Store:  replay.NewMemory(replay.MemoryOptions{Capacity: 1, TTL: time.Second}),
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := v.Mint(user, host, at, "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// session is the stdin/stdout helper run in-process with the generic
// protocol, its reload signal injected.
type session struct {
	t      testing.TB
	in     *io.PipeWriter
	out    *bufio.Reader
	stderr *syncBuffer
	hup    chan os.Signal
	done   chan int
}

func startSession(t testing.TB, cfgPath string, extra ...string) *session {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{t: t, in: inW, out: bufio.NewReader(outR), stderr: &syncBuffer{},
		hup: make(chan os.Signal), done: make(chan int, 1)}
	e := &cli.Env{Stdin: inR, Stdout: outW, Stderr: s.stderr, Reload: s.hup}
	args := append([]string{"-config", cfgPath, "-protocol", "generic"}, extra...)
	go func() {
		s.done <- run(context.Background(), e, args)
		outW.Close()
	}()
	t.Cleanup(func() { s.close() })
	return s
}

// ask sends one request line and returns the reply ("1" or "0").
func (s *session) ask(req string) string {
	s.t.Helper()
	if _, err := io.WriteString(s.in, genLine(req)); err != nil {
		s.t.Fatalf("write %q: %v (stderr: %s)", req, err, s.stderr)
	}
	yes, err := protocol.ReadReply(s.out, protocol.Generic)
	if err != nil {
		s.t.Fatalf("reply to %q: %v (stderr: %s)", req, err, s.stderr)
	}
	return yesNo(yes)
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
	waitFor(s.t, "the reload's log line", func() bool { return s.reloads() > n })
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

func tempConfigPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "config.toml")
}
