//go:build unix

package verifier

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
	"github.com/tokenauthd/tokenauthd/replay"
)

// cpuTime returns the CPU time this process has used, all threads, user
// and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuTimer reports the process's CPU time per operation as "cpu-ns/op":
// unlike ns/op, it does not grow with the machine's load.
func cpuTimer(b *testing.B) (stop func()) {
	start := cpuTime()
	return func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }
}

// benchVerifier returns a verifier on a store of capacity n (at least
// 1,000), with its clock fixed at now.
func benchVerifier(b *testing.B, now int64, n int) *Verifier {
	b.Helper()
	c := testclock.New(time.Unix(now, 0))
	return benchVerifierOn(b, n, time.Hour, c.Now)
}

// benchVerifierOn returns a verifier on a store of capacity n (at least
// 1,000) whose records live ttl, on the clock now.
func benchVerifierOn(b *testing.B, n int, ttl time.Duration, now func() time.Time) *Verifier {
	b.Helper()
	v, err := New(Config{
		Params: DefaultParams(),
		Hosts: map[string]Host{
			"example.org": {TokenSecrets: [][]byte{[]byte(secretA)}, OTPSeeds: []string{rfcSeed}, IsUser: true},
		},
		Store: replay.NewMemory(replay.MemoryOptions{Capacity: max(n, 1000), TTL: ttl, Now: now}),
		Now:   now,
	})
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkVerify measures one verdict. "accepted" verifies b.N distinct
// fresh tokens (distinct nonces), minted before the timer starts.
func BenchmarkVerify(b *testing.B) {
	const now = 1_700_000_000
	ctx := context.Background()
	// accepted: b.N distinct fresh tokens, minted before the timer starts.
	// "cold" keeps every one (the store grows to b.N records); "steady"
	// has records that expire as fast as new ones come, about 5,000 live
	// in a store of 10,000, as a busy server's store does: the clock moves
	// a microsecond at each reading, records live 10 ms.
	for _, size := range []struct {
		name   string
		steady bool
	}{{"accepted/cold", false}, {"accepted/steady", true}} {
		b.Run(size.name, func(b *testing.B) {
			var v *Verifier
			if size.steady {
				t := time.Unix(now, 0)
				v = benchVerifierOn(b, 10_000, 10*time.Millisecond, func() time.Time {
					t = t.Add(time.Microsecond)
					return t
				})
			} else {
				v = benchVerifier(b, now, b.N)
			}
			otp := tokenAt(b, v, "alice", now, "1")[:8]
			toks := make([]string, b.N)
			for i := range toks {
				toks[i] = Sign([]byte(secretA), otp, fmt.Sprintf("%032d", i), "alice", "example.org")
			}
			verifyAll(b, v, toks)
		})
	}
	refusals := []struct {
		name string
		user string
		tok  func(v *Verifier) string
		want Reason
	}{
		{"replayed", "alice", func(v *Verifier) string {
			t := tokenAt(b, v, "alice", now, nonce32)
			v.Verify(ctx, "alice", "example.org", t)
			return t
		}, Replayed},
		{"bad_signature", "bob", func(v *Verifier) string { return tokenAt(b, v, "alice", now, nonce32) }, BadSignature},
		{"otp_out_of_window", "alice", func(v *Verifier) string { return tokenAt(b, v, "alice", now-120, nonce32) }, OTPOutOfWindow},
		{"malformed", "alice", func(*Verifier) string { return "hunter2" }, Malformed},
	}
	for _, rf := range refusals {
		b.Run(rf.name, func(b *testing.B) {
			v := benchVerifier(b, now, 0)
			tok := rf.tok(v)
			b.ReportAllocs()
			b.ResetTimer()
			defer cpuTimer(b)()
			for i := 0; i < b.N; i++ {
				if r := v.Verify(ctx, rf.user, "example.org", tok); r.Reason != rf.want {
					b.Fatalf("%+v, want %s", r, rf.want)
				}
			}
		})
	}
}

// BenchmarkParseToken measures parsing alone.
func BenchmarkParseToken(b *testing.B) {
	tok := Sign([]byte(secretA), "12345678", nonce32, "alice", "example.org")
	b.ReportAllocs()
	defer cpuTimer(b)()
	for i := 0; i < b.N; i++ {
		if _, err := ParseToken(tok, 8); err != nil {
			b.Fatal(err)
		}
	}
}

// verifyAll times Verify of b.N passwords for alice@example.org, each of
// which must be accepted.
func verifyAll(b *testing.B, v *Verifier, toks []string) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	defer cpuTimer(b)()
	for i := 0; i < b.N; i++ {
		if r := v.Verify(ctx, "alice", "example.org", toks[i]); !r.OK() {
			b.Fatalf("password %d: %+v", i, r)
		}
	}
}
