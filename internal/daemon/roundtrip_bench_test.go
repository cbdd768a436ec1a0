//go:build unix

package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// processCPU returns the CPU time this process has used, all threads.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServeRoundTrip measures one request through the protocol
// server and the verifier, ejabberd framing, in lockstep as ejabberd sends
// them (a request, then its reply), over in-memory pipes. "accepted"
// sends b.N distinct fresh tokens; "refused" one token that is always
// replayed (its refusal is logged, to io.Discard).
func BenchmarkServeRoundTrip(b *testing.B) {
	const host = "example.org"
	secret := []byte("bench secret")
	seed := "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	now := time.Now()
	for _, accepted := range []bool{true, false} {
		name := map[bool]string{true: "accepted", false: "refused"}[accepted]
		b.Run(name, func(b *testing.B) {
			store := replay.NewMemory(replay.MemoryOptions{Capacity: 10_000, TTL: time.Hour,
				Now: func() time.Time { return now }})
			v, err := verifier.New(verifier.Config{
				Params: verifier.DefaultParams(),
				Hosts:  map[string]verifier.Host{host: {TokenSecrets: [][]byte{secret}, OTPSeeds: []string{seed}, IsUser: true}},
				Store:  store,
				Now:    func() time.Time { return now },
			})
			if err != nil {
				b.Fatal(err)
			}
			log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
			otp, _ := v.Mint("alice", host, now, "1")
			otp = otp[:8]
			n := b.N
			if !accepted {
				n = 1
			}
			reqs := make([][]byte, n)
			var first string // the first request's token
			for i := range reqs {
				tok := verifier.Sign(secret, otp, fmt.Sprintf("%032d", i), "alice", host)
				reqs[i] = []byte(fixture.Frame("auth:alice:" + host + ":" + tok))
				if i == 0 {
					first = tok
				}
			}
			if !accepted {
				v.Verify(context.Background(), "alice", host, first)
			}
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			srv := newProtocolServer(protocol.Ejabberd, newAuthHandler(v, log), log)
			done := make(chan error, 1)
			go func() { done <- srv.Serve(context.Background(), inR, outW) }()
			replies := bufio.NewReaderSize(outR, 16)
			b.ReportAllocs()
			b.ResetTimer()
			start := processCPU()
			for i := 0; i < b.N; i++ {
				if _, err := inW.Write(reqs[i%n]); err != nil {
					b.Fatal(err)
				}
				yes, err := protocol.ReadReply(replies, protocol.Ejabberd)
				if err != nil {
					b.Fatal(err)
				}
				if yes != accepted {
					b.Fatalf("request %d: reply %v", i, yes)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
			inW.Close()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
