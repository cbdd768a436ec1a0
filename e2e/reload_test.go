package e2e

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
)

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
