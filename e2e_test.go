package main

// Helpers for the end-to-end tests: the built binary, real peers from
// Debian's packages, free loopback ports, tokens from pyotp and logins from
// slixmpp. With TOKENAUTHD_E2E=1 (scripts/test sets it) a missing peer fails
// the test; otherwise it skips it, for a quick `go test ./...`.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// debianPython is Debian's Python, which can import python3-pyotp and
// python3-slixmpp (a python3 earlier on PATH may not).
const debianPython = "/usr/bin/python3"

// requirePeer fails (TOKENAUTHD_E2E=1) or skips the test if a program or
// Python module it needs is missing.
func requirePeer(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		var err error
		if mod, ok := strings.CutPrefix(p, "python:"); ok {
			err = exec.Command(debianPython, "-c", "import "+mod).Run()
		} else {
			_, err = os.Stat(p)
		}
		if err != nil {
			if os.Getenv("TOKENAUTHD_E2E") == "1" {
				t.Fatalf("required test peer %s is missing: %v (scripts/test installs it)", p, err)
			}
			t.Skipf("test peer %s missing; run scripts/test to install it", p)
		}
	}
}

var (
	buildOnce sync.Once
	builtPath string
	buildErr  error
)

// binary returns the path of tokenauthd built from this tree, built once per
// test run.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tokenauthd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtPath = filepath.Join(dir, "tokenauthd")
		out, err := exec.Command("go", "build", "-o", builtPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtPath
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitPort waits until something listens on the loopback TCP port.
func waitPort(t testing.TB, port int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on 127.0.0.1:%d after %v", port, within)
}

// pyotpToken mints a token with pyotp (testdata/mint.py), an implementation
// independent of tokenauthd's. at == 0 means now; nonce "" means random.
func pyotpToken(t testing.TB, seed, secret, jid string, at int64, nonce string) string {
	t.Helper()
	requirePeer(t, debianPython, "python:pyotp")
	args := []string{"testdata/mint.py", seed, secret, jid, "", nonce}
	if at != 0 {
		args[4] = fmt.Sprint(at)
	}
	if nonce == "" {
		args = args[:5]
	}
	out, err := exec.Command(debianPython, args...).Output()
	if err != nil {
		t.Fatalf("mint.py: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// xmppLogin logs in with slixmpp (testdata/login.py) and reports whether the
// server let it in. mech is "PLAIN" or "X-TOKEN".
func xmppLogin(t testing.TB, jid, password string, port int, mech string) bool {
	t.Helper()
	requirePeer(t, debianPython, "python:slixmpp")
	cmd := exec.Command(debianPython, "testdata/login.py", jid, password, "127.0.0.1", fmt.Sprint(port), mech)
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
