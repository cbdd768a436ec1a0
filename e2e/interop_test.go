package e2e

// Interoperability with an independent implementation of the token:
// Debian's python3-pyotp and Python's hmac.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// runBinary runs the built tokenauthd with stdin and returns its stdout,
// stderr and exit status.
func runBinary(t testing.TB, stdin []byte, args ...string) (stdout, stderr []byte, code int) {
	t.Helper()
	cmd := exec.Command(fixture.Binary(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("tokenauthd: %v", err)
	}
	return out.Bytes(), errOut.Bytes(), code
}

// interopConfig writes a configuration for two hosts and returns its path.
// It accepts nonces of any length, as mod_auth_token does, so that short
// nonces can be tested too.
func interopConfig(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	text := fmt.Sprintf("[token]\nnonce_digits = 0\n[hosts.\"localhost\"]\ntoken_secret = %q\notp_seed = %q\n"+
		"[hosts.\"chat.example\"]\ntoken_secret = \"ünïcode secret: with colon\"\notp_seed = \"gezdgnbvgy3tqojqgezdgnbvgy3tqojq\"\n",
		e2eSecret, e2eSeed)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Tokens minted by pyotp verify, at fixed times through the verifier with
// an injected clock, and now through the binary.
func TestInteropPyotpTokens(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:pyotp")
	cfg, err := config.Load(interopConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		user, host, secret, seed string
		at                       int64
		nonce                    string
	}{
		{"alice", "localhost", e2eSecret, e2eSeed, 59, "1"}, // RFC 6238's first time
		{"alice", "localhost", e2eSecret, e2eSeed, 1111111109, "7"},
		// RFC 6238's seed, spelt lower case in the configuration: an OTP
		// with a leading zero (07081804).
		{"bob", "chat.example", "ünïcode secret: with colon", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 1111111109, "00"},
		{"élodie", "chat.example", "ünïcode secret: with colon", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 2000000000, "123"},
		{"carol", "localhost", e2eSecret, e2eSeed, 1_700_000_000, "01234567890123456789012345678901"},
	}
	for _, c := range cases {
		tok := pyotpToken(t, c.seed, c.secret, c.user+"@"+c.host, c.at, c.nonce)
		v, err := verifier.New(verifier.Config{Params: cfg.Params, Hosts: cfg.Hosts,
			Store: replay.NewMemory(replay.MemoryOptions{Capacity: 10, TTL: time.Minute}),
			Now:   func() time.Time { return time.Unix(c.at, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		if r := v.Verify(context.Background(), c.user, c.host, tok); !r.OK() || r.Offset != 0 {
			t.Errorf("pyotp token for %s@%s at %d: %+v", c.user, c.host, c.at, r)
		}
		// And tokenauthd's own minting agrees with pyotp, byte for byte.
		mine, err := v.Mint(c.user, c.host, time.Unix(c.at, 0), tok[8:strings.IndexByte(tok, ' ')])
		if err != nil || mine != tok {
			t.Errorf("Mint = %q, %v; pyotp made %q", mine, err, tok)
		}
	}

	// Now, through the binary: fresh pyotp tokens are accepted, once.
	path := interopConfig(t)
	var in bytes.Buffer
	var want []byte
	for _, jid := range []string{"alice@localhost", "élodie@chat.example", "bob@chat.example"} {
		seed, secret := e2eSeed, e2eSecret
		if strings.HasSuffix(jid, "chat.example") {
			seed, secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "ünïcode secret: with colon"
		}
		user, host, _ := strings.Cut(jid, "@")
		tok := pyotpToken(t, seed, secret, jid, 0, "")
		for _, yes := range []bool{true, false} { // fresh, then replayed
			in.WriteString(fixture.Frame("auth:" + user + ":" + host + ":" + tok))
			want = protocol.AppendReply(want, protocol.Ejabberd, yes)
		}
	}
	out, errOut, code := runBinary(t, in.Bytes(), "-config", path)
	if code != 0 || !bytes.Equal(out, want) {
		t.Errorf("binary: exit %d, replies %x, want 0, %x\n%s", code, out, want, errOut)
	}
}

// Tokens from `tokenauthd mint` (the binary) pass an independent pyotp and
// hmac check (testdata/check.py), which refuses a tampered one.
func TestInteropMintCheckedByPyotp(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:pyotp")
	path := interopConfig(t)
	check := func(seed, secret, jid string, at int64, tok string) error {
		return exec.Command(fixture.DebianPython, "testdata/check.py", seed, secret, jid, fmt.Sprint(at), tok).Run()
	}
	for _, c := range []struct {
		jid, seed, secret string
		at                int64
	}{
		{"alice@localhost", e2eSeed, e2eSecret, 59},
		{"alice@localhost", e2eSeed, e2eSecret, time.Now().Unix()},
		{"élodie@chat.example", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "ünïcode secret: with colon", 1111111109},
	} {
		out, errOut, code := runBinary(t, nil, "mint", "-config", path, "-at", fmt.Sprint(c.at), c.jid)
		tok := strings.TrimSuffix(string(out), "\n")
		if code != 0 {
			t.Fatalf("mint %s: exit %d: %s", c.jid, code, errOut)
		}
		if err := check(c.seed, c.secret, c.jid, c.at, tok); err != nil {
			t.Errorf("check.py refuses tokenauthd's token %q for %s at %d: %v", tok, c.jid, c.at, err)
		}
		// The check is no rubber stamp: another time, JID or nonce fails.
		if check(c.seed, c.secret, c.jid, c.at+60, tok) == nil ||
			check(c.seed, c.secret, "mallory@localhost", c.at, tok) == nil ||
			check(c.seed, c.secret, c.jid, c.at, tok[:9]+"0"+tok[10:]) == nil && tok[9] != '0' {
			t.Errorf("check.py accepts a wrong token")
		}
	}
}
