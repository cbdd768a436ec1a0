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
	args := []string{seed, secret, jid, "", nonce}
	if at != 0 {
		args[3] = fmt.Sprint(at)
	}
	if nonce == "" {
		args = args[:4]
	}
	return python(t, "testdata/mint.py", args...)
}

// pyJWT mints a JWT for jid with Debian's PyJWT (testdata/mint_jwt.py),
// signed with key's PEM and naming its kid, as an application in Python
// would.
func pyJWT(t testing.TB, key fixture.JWTKey, jid string) string {
	t.Helper()
	fixture.RequirePeer(t, fixture.DebianPython, "python:jwt", "python:cryptography")
	return python(t, "testdata/mint_jwt.py", key.PEM, key.KID, jid)
}

// python runs a script of testdata with Debian's Python and returns the
// line it prints.
func python(t testing.TB, script string, args ...string) string {
	t.Helper()
	out, err := exec.Command(fixture.DebianPython, append([]string{script}, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("%s: %v\n%s", script, err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// mintJWT mints a JWT for jid with `tokenauthd mint -jwt -key`, signed with
// key's private JWK (its kid and alg go into the header).
func mintJWT(t testing.TB, key fixture.JWTKey, jid string) string {
	t.Helper()
	out, errOut, code := runBinary(t, nil, "mint", "-jwt", "-key", key.JWK, jid)
	if code != 0 {
		t.Fatalf("tokenauthd mint -jwt: exit %d: %s", code, errOut)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// minter mints a fresh credential, a token or a JWT, for user at
// fixture.Host.
type minter func(t testing.TB, user string) string

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
