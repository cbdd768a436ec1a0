package e2e

// Replay stores that may forget: a Redis restarted without persistence or
// flushed, a lost journal, a memory store restarted. A token accepted
// before the loss is never accepted after it; fresh tokens are refused
// until the refusals end, and the log and explain say so.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// TestAmnesiaJournal: a token accepted, the daemon killed, its journal
// lost (deleted, or damaged in the middle): the restarted daemon does not
// accept the token again. It cannot tell that token from a fresh one, so
// it refuses every token that could have been accepted before, and logs
// why and until when.
func TestAmnesiaJournal(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(path string) error
	}{
		{"deleted", os.Remove},
		{"damaged", func(path string) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			// The header, the record of the token, then a record of
			// another token: damage the first.
			b[8+3] ^= 0xff
			return os.WriteFile(path, b, 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "d.sock")
			journal := filepath.Join(dir, "replay.journal")
			extra := fmt.Sprintf("[replay]\njournal = %q\n", journal)
			fixture.MakeJournal(t, journal)
			p := startServeWith(t, extra, sock)
			tok := fixture.Token(t, "alice")
			if !fixture.Auth(t, sock, "alice", tok) || !fixture.Auth(t, sock, "bob", fixture.Token(t, "bob")) {
				t.Fatal("fresh token refused")
			}
			p.signal(t, syscall.SIGKILL)
			if err := tc.lose(journal); err != nil {
				t.Fatal(err)
			}
			p2 := startServeWith(t, extra, sock)
			if fixture.Auth(t, sock, "alice", tok) {
				t.Fatal("the token accepted before the journal was lost was accepted again")
			}
			if fixture.Auth(t, sock, "carol", fixture.Token(t, "carol")) {
				t.Error("a token minted in the same step was accepted: it cannot be told from a replay")
			}
			log := p2.log()
			for _, want := range []string{"the replay store may have lost records", "refused_until=", "reason=store_forgot", "tokens minted before"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
		})
	}
}

// TestAmnesiaRedis: a token accepted, then Redis loses its data (restarted
// without persistence, or flushed): the daemon does not accept the token
// again, nor any token that could have been accepted before the loss,
// whose records are gone too; the socket's "unused" and "seen" requests
// call none of them unused or seen. The log says why and until when.
func TestAmnesiaRedis(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(t *testing.T, rs *fixture.Redis)
	}{
		{"restarted without persistence", func(t *testing.T, rs *fixture.Redis) {
			rs.Stop()
			fixture.StartRedis(t, rs.Port)
		}},
		{"flushed", func(t *testing.T, rs *fixture.Redis) {
			c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.Port)})
			defer c.Close()
			if err := c.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := fixture.StartRedis(t, 0)
			fixture.MarkRedis(t, rs.Port, "tokenauthd:")
			sock := filepath.Join(t.TempDir(), "d.sock")
			cfg := fixture.WriteConfig(t, t.TempDir(), fmt.Sprintf("[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:%d/0\"\n", rs.Port))
			p := startServe(t, cfg, sock)
			tok := fixture.Token(t, "alice")
			if !fixture.Auth(t, sock, "alice", tok) {
				t.Fatal("fresh token refused")
			}
			tc.lose(t, rs)
			if fixture.Auth(t, sock, "alice", tok) {
				t.Fatal("the token accepted before Redis lost its data was accepted again")
			}
			fresh := fixture.Token(t, "bob")
			for _, cmd := range []string{protocol.CmdUnused, protocol.CmdSeen} {
				if yes, err := protocol.Query(context.Background(), "unix", sock, protocol.Generic, protocol.Request{Command: cmd, User: "bob", Server: fixture.Host, Password: fresh}); err != nil || yes {
					t.Errorf("%s after the loss = %v, %v; want no", cmd, yes, err)
				}
			}
			if fixture.Auth(t, sock, "bob", fresh) {
				t.Error("a token minted in the same step was accepted: it cannot be told from a replay")
			}
			log := p.log()
			for _, want := range []string{"the replay store may have lost records", "refused_until=", "reason=store_forgot"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
			// explain tells why, and from when tokens are accepted again.
			stdout, _, _ := runBinary(t, nil, "explain", "-config", cfg, "-socket", sock, "alice@"+fixture.Host, tok)
			if !strings.Contains(string(stdout), "may have lost records") || !strings.Contains(string(stdout), "tokens minted from") {
				t.Errorf("explain:\n%s", stdout)
			}
		})
	}
}

// testVerifier returns a verifier of fixture.Host's configuration plus extra,
// to mint tokens with.
func testVerifier(t *testing.T, extra string) (*verifier.Verifier, verifier.Params) {
	t.Helper()
	cfg, err := config.Load(fixture.WriteConfig(t, t.TempDir(), extra))
	if err != nil {
		t.Fatal(err)
	}
	v, err := config.NewVerifier(cfg, replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	return v, cfg.Params
}

// TestAmnesiaMemoryRestart: a memory store without journal starts empty.
// By default a token accepted before a restart is accepted again after it,
// while it is inside its window: what the documentation says. With
// refuse_after_start the restarted daemon refuses it, as every token that
// could have been accepted before it started, and logs until when. Steps
// of 3 s keep the wait for the first refusals to end short.
func TestAmnesiaMemoryRestart(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("refuse_after_start=%v", refuse), func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "d.sock")
			extra := fmt.Sprintf("[token]\ninterval = 3\n[replay]\nrefuse_after_start = %v\n", refuse)
			v, params := testVerifier(t, extra)
			p := startServeWith(t, extra, sock)
			if refuse { // the refusals of the first start
				time.Sleep(time.Until(params.RefusalEnds(time.Now())))
			}
			tok := fixture.MintWith(t, v, "alice", fixture.Host, time.Now())
			if !fixture.Auth(t, sock, "alice", tok) {
				t.Fatal("fresh token refused")
			}
			p.signal(t, syscall.SIGTERM)
			p2 := startServeWith(t, extra, sock)
			if got := fixture.Auth(t, sock, "alice", tok); got == refuse {
				t.Fatalf("replay after the restart: accepted %v", got)
			}
			if refuse && !strings.Contains(p2.log(), "refuse_after_start") || refuse != strings.Contains(p2.log(), "reason=store_forgot") {
				t.Errorf("log:\n%s", p2.log())
			}
		})
	}
}

// TestAmnesiaRefusalsEnd: the refusals after a loss end drift+1 steps after
// the loss's step began. With 1-second steps a token minted two seconds
// after the start of a daemon with refuse_after_start is accepted.
func TestAmnesiaRefusalsEnd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	extra := "[token]\ninterval = 1\n[replay]\nrefuse_after_start = true\n"
	v, params := testVerifier(t, extra)
	start := time.Now()
	startServeWith(t, extra, sock)
	if fixture.Auth(t, sock, "alice", fixture.MintWith(t, v, "alice", fixture.Host, time.Now())) && time.Now().Before(params.RefusalEnds(start)) {
		t.Fatal("a token minted in the start's step was accepted")
	}
	// Wait out the refusals (from the last moment the daemon may have
	// started).
	time.Sleep(time.Until(params.RefusalEnds(time.Now())))
	if !fixture.Auth(t, sock, "bob", fixture.MintWith(t, v, "bob", fixture.Host, time.Now())) {
		t.Fatal("a token minted after the refusals ended was refused")
	}
}
