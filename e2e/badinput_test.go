package e2e

// Bad input through the real binary, in both framings: every request is
// answered, the stream stays in sync, stdout holds replies only, the exit
// status is 0 at the end of input and no token or password reaches stderr.

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
)

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
