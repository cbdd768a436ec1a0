package e2e

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// TestAmnesiaRedisMarkedAgainBeforeStart: a token accepted, then Redis
// restarted without persistence; one daemon finds the loss and marks Redis
// again. A daemon that connects for the first time after that (another
// node's starting, or the same one restarted within the token's lifetime)
// finds a marker and must still not accept the token a second time: its
// record went with Redis's data.
func TestAmnesiaRedisMarkedAgainBeforeStart(t *testing.T) {
	for _, tc := range []struct {
		name       string
		restartOld bool // the daemon that accepted the token restarts
	}{
		{"another node starts", false},
		{"the same daemon restarts", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := fixture.StartRedis(t, 0)
			fixture.MarkRedis(t, rs.Port, "tokenauthd:")
			dir := t.TempDir()
			extra := fmt.Sprintf("[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:%d/0\"\n", rs.Port)
			a := filepath.Join(dir, "a.sock")
			pa := startServeWith(t, extra, a)
			tok := fixture.Token(t, "alice")
			if !fixture.Auth(t, a, "alice", tok) {
				t.Fatal("fresh token refused")
			}
			rs.Stop()
			fixture.StartRedis(t, rs.Port)
			// Any request makes the daemon find the loss and mark Redis again.
			if fixture.Auth(t, a, "bob", fixture.Token(t, "bob")) {
				t.Fatal("a token minted in the step of the loss was accepted")
			}
			sock := filepath.Join(dir, "b.sock")
			if tc.restartOld {
				pa.signal(t, syscall.SIGTERM)
				sock = a
			}
			startServeWith(t, extra, sock)
			if fixture.Auth(t, sock, "alice", tok) {
				t.Fatal("the token accepted before Redis lost its data was accepted again by a daemon started after the loss")
			}
		})
	}
}
