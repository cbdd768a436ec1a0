package e2e

// Framing detection through the real binary: an ejabberd frame long enough
// that its first length byte is a lowercase letter (0x6100 bytes and more,
// the password's length being the client's to choose) must not switch the
// stdio helper, the relay or a daemon connection to line framing.

import (
	"bytes"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
)

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
