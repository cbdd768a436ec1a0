package daemon

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/mint"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// TestReloadKeepsStoreAndOldConfigOnFailure: SIGHUP (injected) applies new
// hosts and secrets to the next request, keeps the replay store, and a bad
// file leaves the previous configuration serving.
func TestReloadKeepsStoreAndOldConfigOnFailure(t *testing.T) {
	path := fixture.ConfigPath(t)
	fixture.WriteFile(t, path, fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil))
	s := startSession(t, path)

	tokA := fixture.Mint(t, fixture.SecretA, fixture.SeedA, "alice", "a.example")
	if !s.auth("alice", "a.example", tokA) {
		t.Fatalf("fresh token refused before reload: %s", s.stderr)
	}
	tokH := fixture.Mint(t, fixture.SecretH, fixture.SeedH, "bob", "h.example")
	if s.auth("bob", "h.example", tokH) {
		t.Fatal("token for a host not yet configured accepted")
	}

	// New host, and a.example's secret rotated.
	fixture.WriteFile(t, path, fixture.HostBlock("a.example", fixture.SecretB, fixture.SeedA, []string{fixture.SecretA}, nil)+
		fixture.HostBlock("h.example", fixture.SecretH, fixture.SeedH, nil, nil))
	s.reload()
	if !strings.Contains(s.stderr.String(), "configuration reloaded") {
		t.Fatalf("reload not logged as done: %s", s.stderr)
	}
	if s.auth("alice", "a.example", tokA) {
		t.Fatal("token accepted before the reload accepted again after it: replay store lost")
	}
	if !s.auth("bob", "h.example", fixture.Mint(t, fixture.SecretH, fixture.SeedH, "bob", "h.example")) {
		t.Fatal("new host not in effect after reload")
	}
	if !s.auth("alice", "a.example", fixture.Mint(t, fixture.SecretB, fixture.SeedA, "alice", "a.example")) {
		t.Fatal("new secret not in effect after reload")
	}

	// A file that does not load: logged, and the previous one keeps serving.
	fixture.WriteFile(t, path, "[hosts.\"a.example\"]\ntoken_secret = \n")
	s.reload()
	if !strings.Contains(s.stderr.String(), "configuration reload failed") {
		t.Fatalf("failed reload not logged: %s", s.stderr)
	}
	if !s.auth("bob", "h.example", fixture.Mint(t, fixture.SecretH, fixture.SeedH, "bob", "h.example")) {
		t.Fatal("a failed reload took the previous configuration away")
	}
	if !s.auth("alice", "a.example", fixture.Mint(t, fixture.SecretA, fixture.SeedA, "alice", "a.example")) {
		t.Fatal("a failed reload took the old secret away")
	}

	// Changing [token] needs a restart: refused, previous one kept.
	fixture.WriteFile(t, path, "[token]\ndrift = 3\n"+fixture.HostBlock("a.example", fixture.SecretB, fixture.SeedA, nil, nil))
	s.reload()
	if got := strings.Count(s.stderr.String(), "configuration reload failed"); got != 2 {
		t.Fatalf("reload changing [token] not refused (%d failures logged): %s", got, s.stderr)
	}
	if !s.auth("alice", "a.example", fixture.Mint(t, fixture.SecretA, fixture.SeedA, "alice", "a.example")) {
		t.Fatal("a refused reload was partly applied")
	}
	if code := s.close(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// TestReloadAppliesLogLevel: [log] level is applied by a reload.
func TestReloadAppliesLogLevel(t *testing.T) {
	path := fixture.ConfigPath(t)
	fixture.WriteFile(t, path, "[log]\nlevel = \"info\"\n"+fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil))
	s := startSession(t, path)
	s.auth("alice", "a.example", fixture.Mint(t, fixture.SecretA, fixture.SeedA, "alice", "a.example"))
	if strings.Contains(s.stderr.String(), "accepted") {
		t.Fatal("accepted logged at level info")
	}
	fixture.WriteFile(t, path, "[log]\nlevel = \"debug\"\n"+fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil))
	s.reload()
	s.auth("alice", "a.example", fixture.Mint(t, fixture.SecretA, fixture.SeedA, "alice", "a.example"))
	if !strings.Contains(s.stderr.String(), "msg=accepted") {
		t.Fatalf("debug level not in effect after reload: %s", s.stderr)
	}
}

// TestRotationProcedure follows README's "Rotating secrets" step by step,
// rotating a host's token secret and OTP seed at once, with the application
// switching in the middle: every token the application mints is accepted at
// every step, including tokens minted just before a step and used after it.
func TestRotationProcedure(t *testing.T) {
	path := fixture.ConfigPath(t)
	const host, user = "a.example", "alice"
	old := func() string { return fixture.Mint(t, fixture.SecretA, fixture.SeedA, user, host) }
	cur := func() string { return fixture.Mint(t, fixture.SecretB, fixture.SeedB, user, host) }

	// Step 0: the application and tokenauthd share A.
	fixture.WriteFile(t, path, fixture.HostBlock(host, fixture.SecretA, fixture.SeedA, nil, nil))
	s := startSession(t, path)
	if !s.auth(user, host, old()) {
		t.Fatal("step 0: token refused")
	}
	inFlight := old() // minted by the application, not yet used

	// Step 1: B becomes current, A moves to the old lists; reload.
	fixture.WriteFile(t, path, fixture.HostBlock(host, fixture.SecretB, fixture.SeedB, []string{fixture.SecretA}, []string{fixture.SeedA}))
	s.reload()
	if !s.auth(user, host, inFlight) {
		t.Fatal("step 1: token minted before the reload refused after it")
	}
	if !s.auth(user, host, old()) {
		t.Fatal("step 1: the application (still on A) refused")
	}
	if !s.auth(user, host, cur()) {
		t.Fatal("step 1: a token of the new secret refused")
	}
	// mint uses the new secret and seed only.
	if got := mintToken(t, path, user+"@"+host); !acceptedBy(t, fixture.SecretB, fixture.SeedB, user, host, got) || acceptedBy(t, fixture.SecretA, fixture.SeedA, user, host, got) {
		t.Fatal("step 1: tokenauthd mint does not use the new secret and seed")
	}

	// Step 2: the application switches to B; its last A token is used late.
	inFlight = old()
	if !s.auth(user, host, cur()) {
		t.Fatal("step 2: the application (now on B) refused")
	}
	if !s.auth(user, host, inFlight) {
		t.Fatal("step 2: last token of the old secret refused")
	}

	// Step 3: A removed; reload. B still accepted, A no longer.
	fixture.WriteFile(t, path, fixture.HostBlock(host, fixture.SecretB, fixture.SeedB, nil, nil))
	s.reload()
	if !s.auth(user, host, cur()) {
		t.Fatal("step 3: the application refused")
	}
	if s.auth(user, host, old()) {
		t.Fatal("step 3: the removed secret still accepted")
	}
}

// mintToken runs tokenauthd mint.
func mintToken(t *testing.T, cfg, jid string) string {
	t.Helper()
	var out, errb fixture.Buffer
	if code := mint.Run(t.Context(), &cli.Env{Stdout: &out, Stderr: &errb}, []string{"-config", cfg, jid}); code != 0 {
		t.Fatalf("mint: exit %d: %s", code, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// acceptedBy reports whether a verifier with only this secret and seed
// would accept the token.
func acceptedBy(t *testing.T, secret, seed, user, host, token string) bool {
	t.Helper()
	return fixture.Verifier(t, secret, seed, host).Check(t.Context(), user, host, token).OK()
}

// In-process sessions of the stdin/stdout helper, and configuration files
// for tests.

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

// TestReloadServeSocketFlag: serve -socket PATH listens there, and a
// reload of an unchanged file reports no setting changed: -socket is not
// the file's [daemon] socket changing.
func TestReloadServeSocketFlag(t *testing.T) {
	dir := t.TempDir()
	cfgPath := fixture.WriteConfig(t, dir, "")
	sock := filepath.Join(dir, "flag.sock")
	var errOut fixture.Buffer
	hup := make(chan os.Signal, 1)
	e := &cli.Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &errOut, Reload: hup}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() { done <- RunServe(ctx, e, []string{"-config", cfgPath, "-socket", sock}) }()
	tok := fixture.Token(t, "alice")
	fixture.WaitFor(t, "the socket", func() bool { return fileExists(sock) })
	hup <- syscall.SIGHUP
	fixture.WaitFor(t, "the reload", func() bool { return strings.Contains(errOut.String(), "configuration reloaded") })
	if !fixture.Auth(t, sock, "alice", tok) {
		t.Error("fresh token refused on the -socket path")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve: exit %d\n%s", code, errOut.String())
	}
	if strings.Contains(errOut.String(), "takes effect at the next restart") {
		t.Errorf("a reload of an unchanged file reports a setting changed:\n%s", errOut.String())
	}
}

// fileExists reports whether something is at path.
func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
