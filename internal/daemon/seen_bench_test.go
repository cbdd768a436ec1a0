package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/internal/seen"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// BenchmarkAnswerSeen is an accepted login through the handler on a host
// with isuser = true, and on one with isuser = "seen" (seen users in
// memory): alice logging in again and again ("again": her mark written
// once), or a new user each time ("first": a mark each). The difference
// is what "seen" adds to a login.
func BenchmarkAnswerSeen(b *testing.B) {
	const host = "example.org"
	secret := []byte("bench secret")
	seed := "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	now := time.Now()
	for _, c := range []struct {
		name    string
		seenFor time.Duration
		again   bool
	}{{"isuser=true", 0, true}, {"seen/again", 90 * 24 * time.Hour, true}, {"seen/first", 90 * 24 * time.Hour, false}} {
		b.Run(c.name, func(b *testing.B) {
			v, err := verifier.New(verifier.Config{
				Params: verifier.DefaultParams(),
				Hosts:  map[string]verifier.Host{host: {TokenSecrets: [][]byte{secret}, OTPSeeds: []string{seed}, IsUser: true, SeenFor: c.seenFor}},
				Store:  replay.NewMemory(replay.MemoryOptions{Capacity: b.N + 1, TTL: time.Hour, Now: func() time.Time { return now }}),
				Now:    func() time.Time { return now },
			})
			if err != nil {
				b.Fatal(err)
			}
			log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
			h := newAuthHandler(v, log, logs.NewRateLog(log, nil), nil, seen.New(replay.NewMemoryMarks(replay.MemoryMarksOptions{}), seen.Options{}))
			otp, _ := v.Mint("alice", host, now, "1")
			reqs := make([]protocol.Request, b.N)
			for i := range reqs {
				user := "alice"
				if !c.again {
					user = fmt.Sprint("user", i)
				}
				reqs[i] = protocol.Request{Command: protocol.CmdAuth, User: user, Server: host,
					Password: verifier.Sign(secret, otp[:8], fmt.Sprintf("%032d", i), user, host)}
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				if ok, reason := h.answer(ctx, reqs[i]); !ok {
					b.Fatalf("login %d refused: %s", i, reason)
				}
			}
		})
	}
}
