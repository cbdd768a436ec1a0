package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// Bad input through the real binary, in both framings: every request is
// answered, the stream stays in sync, stdout holds replies only, the exit
// status is 0 at the end of input and no token or password reaches stderr.

func TestBinaryBadInput(t *testing.T) {
	path := interopConfig(t)
	rng := rand.New(rand.NewPCG(1, 2))
	// random returns n random bytes, none of them in avoid.
	random := func(n int, avoid ...byte) []byte {
		b := make([]byte, n)
		for i := range b {
			for b[i] = byte(rng.UintN(256)); bytes.IndexByte(avoid, b[i]) >= 0; b[i] = byte(rng.UintN(256)) {
			}
		}
		return b
	}
	mint := func(jid string) string {
		out, errOut, code := runBinary(t, nil, "mint", "-config", path, jid)
		if code != 0 {
			t.Fatalf("mint: %s", errOut)
		}
		return strings.TrimSuffix(string(out), "\n")
	}
	const password = "pass:word:with:colons"

	for _, mode := range []string{"ejabberd", "generic"} {
		t.Run(mode, func(t *testing.T) {
			var in bytes.Buffer
			var want []byte
			var secrets []string // what stderr must never hold
			m := protocol.Ejabberd
			if mode == "generic" {
				m = protocol.Generic
			}
			yes, no := []byte(protocol.Reply(m, true)), []byte(protocol.Reply(m, false))
			req := func(body []byte, answer bool) {
				if mode == "ejabberd" {
					in.WriteString(fixture.Frame(string(body)))
				} else {
					// By hand, not protocol.AppendFrame: the lines include
					// some it refuses on purpose (over MaxFrame, or ending
					// in '\r').
					in.Write(body)
					in.WriteByte('\n')
				}
				want = append(want, map[bool][]byte{true: yes, false: no}[answer]...)
			}
			// Each piece of garbage, then a valid request that must get its
			// own answer: the stream is in sync.
			valid := func() {
				tok := mint("alice@localhost")
				secrets = append(secrets, tok[8:40], tok[41:])
				req([]byte("auth:alice:localhost:"+tok), true)
			}
			valid()
			for i := 0; i < 20; i++ { // random bytes as requests
				req(random(1+rng.IntN(300), '\n'), false)
			}
			valid()
			req([]byte("auth:alice:localhost:"+password), false) // colons in a password
			req([]byte("auth:alice:localhost:"+password+":"+mint("alice@localhost")), false)
			secrets = append(secrets, password)
			req([]byte("isuser:alice:localhost:"), false) // one field too many
			req([]byte("auth:alice:localhost"), false)    // one too few
			if mode == "ejabberd" {
				req(nil, false) // an empty frame
			} else {
				in.WriteString("\n") // an empty line: no request, no reply
			}
			valid()
			if mode == "ejabberd" {
				// The largest frame there is, of garbage.
				req(random(65535), false)
			} else {
				// An overlong line (1 MiB) is answered no and skipped.
				req(append([]byte("auth:alice:localhost:"), bytes.Repeat([]byte(password), 50000)...), false)
				// A lone '\r' line is no request; "\r\n" ends a line.
				in.WriteString("\r\n")
				tok := mint("bob@chat.example")
				secrets = append(secrets, tok[8:40], tok[41:])
				in.WriteString("auth:bob:chat.example:" + tok + "\r\n")
				want = append(want, yes...)
			}
			valid()
			// A request cut by the end of input is answered no.
			if mode == "ejabberd" {
				in.WriteString(fixture.Frame("auth:alice:localhost:" + password)[:10])
			} else {
				in.WriteString("auth:alice:localhost:" + password)
			}
			want = append(want, no...)

			for _, proto := range []string{mode, "auto"} {
				out, errOut, code := runBinary(t, in.Bytes(), "-config", path, "-protocol", proto)
				// (A new process: its replay store is new and empty.)
				if code != 0 || !bytes.Equal(out, want) {
					t.Errorf("-protocol %s: exit %d, stdout %q, want 0, %q", proto, code, out, want)
				}
				for _, s := range secrets {
					if strings.Contains(string(errOut), s) {
						t.Errorf("-protocol %s: stderr holds a secret %q", proto, s)
					}
				}
				if !strings.Contains(string(errOut), "reason=bad_request") {
					t.Errorf("-protocol %s: no bad_request in stderr:\n%s", proto, errOut)
				}
			}
		})
	}
}

// Pure noise, in every framing: the helper answers what it reads as
// requests with well-formed replies only and exits 0 at the end.
func TestBinaryNoise(t *testing.T) {
	path := interopConfig(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, proto := range []string{"ejabberd", "generic", "auto"} {
		for i := 0; i < 3; i++ {
			noise := make([]byte, 1<<(10+4*i))
			for j := range noise {
				noise[j] = byte(rng.UintN(256))
			}
			out, errOut, code := runBinary(t, noise, "-config", path, "-protocol", proto)
			reply := []byte(protocol.Reply(protocol.Ejabberd, false))
			if proto == "generic" {
				reply = []byte(protocol.Reply(protocol.Generic, false))
			}
			if code != 0 || len(out) == 0 && proto == "generic" || !bytes.Equal(out, bytes.Repeat(reply, len(out)/len(reply))) {
				t.Errorf("%s, %d bytes of noise: exit %d, stdout %q\n%s", proto, len(noise), code, out, errOut)
			}
		}
	}
}

// Framing detection through the real binary: an ejabberd frame long enough
// that its first length byte is a lowercase letter (0x6100 bytes and more,
// the password's length being the client's to choose) must not switch the
// stdio helper, the relay or a daemon connection to line framing.

// longFrameLengths are frame lengths whose first byte is a lowercase
// letter, some of them with a second byte that starts a command's name
// ("au" of auth, "is" of isuser, "un" of unused).
var longFrameLengths = []int{0x6100, 0x6175, 0x6973, 0x756e, 0x7a7a}

// longAuthBody returns an auth request body of exactly n bytes for user
// alice at host, its password padded to that length.
func longAuthBody(n int, host string) string {
	prefix := "auth:alice:" + host + ":"
	return prefix + strings.Repeat("x", n-len(prefix))
}

// The stdio helper in auto mode answers a long frame no, in ejabberd
// framing, and the valid token after it yes.
func TestBinaryAutoLongFrame(t *testing.T) {
	cfg := fixture.RFCConfig(t, "")
	for _, n := range longFrameLengths {
		t.Run(fmt.Sprintf("%#x", n), func(t *testing.T) {
			out, errOut, code := runBinary(t, nil, "mint", "-config", cfg, "alice@example.org")
			if code != 0 {
				t.Fatalf("mint: %s", errOut)
			}
			tok := strings.TrimSuffix(string(out), "\n")
			in := fixture.Frame(longAuthBody(n, "example.org")) + fixture.Frame("auth:alice:example.org:"+tok)
			want := protocol.AppendReply(protocol.AppendReply(nil, protocol.Ejabberd, false), protocol.Ejabberd, true)
			out, errOut, code = runBinary(t, []byte(in), "-config", cfg)
			if code != 0 || !bytes.Equal(out, want) {
				t.Errorf("exit %d, replies %q, want 0, %q\n%s", code, out, want, errOut)
			}
		})
	}
}

// The daemon detects the framing of each connection: a long frame first is
// answered no in ejabberd framing, and a valid token after it yes. The
// relay (connect, auto by default) does the same on its stdin.
func TestServeAutoLongFrame(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	startServeWith(t, "", sock)
	for _, n := range longFrameLengths {
		t.Run(fmt.Sprintf("daemon/%#x", n), func(t *testing.T) {
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			go c.Write([]byte(fixture.Frame(longAuthBody(n, fixture.Host))))
			reply, err := fixture.ReadReply(c, protocol.Ejabberd)
			if err != nil || !bytes.Equal(reply, fixture.FrameNo) {
				t.Fatalf("long frame: reply %q, %v; want %q", reply, err, fixture.FrameNo)
			}
			if r := fixture.AskFrame(t, c, "auth:alice:"+fixture.Host+":"+fixture.Token(t, "alice")); !bytes.Equal(r, fixture.FrameYes) {
				t.Errorf("fresh token after a long frame: reply %q, want %q", r, fixture.FrameYes)
			}
		})
		t.Run(fmt.Sprintf("connect/%#x", n), func(t *testing.T) {
			in := fixture.Frame(longAuthBody(n, fixture.Host)) + fixture.Frame("auth:alice:"+fixture.Host+":"+fixture.Token(t, "alice"))
			want := protocol.AppendReply(protocol.AppendReply(nil, protocol.Ejabberd, false), protocol.Ejabberd, true)
			out, errOut, code := runBinary(t, []byte(in), "connect", "-socket", sock)
			if code != 0 || !bytes.Equal(out, want) {
				t.Errorf("exit %d, replies %q, want 0, %q\n%s", code, out, want, errOut)
			}
		})
	}
}

// Interoperability with an independent implementation of the token:
// Debian's python3-pyotp and Python's hmac.

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
	cfg, err := setup.Load(interopConfig(t), config.Options{})
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
		v, err := verifier.NewOffline(verifier.Config{Params: cfg.Verifier.Params, Hosts: cfg.Verifier.Hosts,
			Now: func() time.Time { return time.Unix(c.at, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		if r := v.Check(context.Background(), c.user, c.host, tok); !r.OK() || r.Offset != 0 {
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
