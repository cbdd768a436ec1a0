// Package e2e holds the tests that run the built tokenauthd binary, or a
// real peer: ejabberd, Prosody, redis-server, slixmpp, pyotp and systemd's
// tools. With TOKENAUTHD_E2E=1 (scripts/test sets it) a missing peer fails
// the test instead of skipping it. TOKENAUTHD_PEERS picks whose ejabberd,
// Prosody and Redis run (internal/fixture/peers): Debian 12's (debian12, the
// default) or Debian 13's (debian13, from scripts/peers-debian13), and each
// test that starts one checks that it is that set's version.
//
// It is a test-only package: it must never be imported, and it reaches
// tokenauthd as an admin or an XMPP server would, through the binary, its
// files and its socket; the libraries serve it only to mint tokens and
// prepare files, as an application would.
package e2e

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// Helpers for the end-to-end tests: the built binary, real peers from
// Debian's packages, free loopback ports, tokens from pyotp and logins from
// slixmpp. With TOKENAUTHD_E2E=1 (scripts/test sets it) a missing peer fails
// the test; otherwise it skips it, for a quick `go test ./...`.

// pyotpToken mints a token with pyotp (testdata/mint.py), an implementation
// independent of tokenauthd's. at == 0 means now; nonce "" means random.
func pyotpToken(t testing.TB, seed, secret, jid string, at int64, nonce string) string {
	t.Helper()
	fixture.RequirePeer(t, fixture.DebianPython, "python:pyotp")
	args := []string{"testdata/mint.py", seed, secret, jid, "", nonce}
	if at != 0 {
		args[4] = fmt.Sprint(at)
	}
	if nonce == "" {
		args = args[:5]
	}
	out, err := exec.Command(fixture.DebianPython, args...).Output()
	if err != nil {
		t.Fatalf("mint.py: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// xmppLogin logs in with slixmpp (testdata/login.py) and reports whether the
// server let it in. mech is "PLAIN" or "X-TOKEN".
func xmppLogin(t testing.TB, jid, password string, port int, mech string) bool {
	t.Helper()
	fixture.RequirePeer(t, fixture.DebianPython, "python:slixmpp")
	cmd := exec.Command(fixture.DebianPython, "testdata/login.py", jid, password, "127.0.0.1", fmt.Sprint(port), mech)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return false
	}
	t.Fatalf("login.py %s: %v\n%s", jid, err, out)
	return false
}
