//go:build unix

package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	redisstore "github.com/tokenauthd/tokenauthd/replay/redis"
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
			srv := newProtocolServer(protocol.Ejabberd, newAuthHandler(v, log, logs.NewRateLog(log, nil), nil, nil), log)
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

// BenchmarkDaemon measures an in-process daemon through its real Unix
// socket: N connections, each sending fresh tokens one at a time and
// waiting for each reply (as each ejabberd pool member or Prosody does),
// with the memory store and with a real redis-server on loopback. ns/op is
// wall time per request over all connections; req/s the throughput;
// p50-µs and p99-µs the round trip seen by one connection.
func BenchmarkDaemon(b *testing.B) {
	for _, store := range []string{"memory", "redis"} {
		for _, conns := range []int{1, 4, 64} {
			b.Run(fmt.Sprintf("store=%s/conns=%d", store, conns), func(b *testing.B) {
				var st replay.Store
				if store == "redis" {
					rs := fixture.StartRedis(b, 0)
					addr := fmt.Sprintf("127.0.0.1:%d", rs.Port)
					fixture.MarkRedis(b, rs.Port, redisstore.DefaultPrefix) // not a first start: no refusals
					st = redisstore.New(func(onConnect func(context.Context, *redis.Conn) error) redis.UniversalClient {
						return redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}, OnConnect: onConnect})
					}, redisstore.Options{TTL: 2 * time.Minute})
				}
				benchDaemon(b, st, conns, store == "memory")
			})
		}
	}
}

// benchDaemon runs the benchmark on store. Refusals are counted (a Redis
// slower than its 500 ms bound on an overloaded machine refuses, as it
// must) and fail the benchmark only if mustAccept.
func benchDaemon(b *testing.B, store replay.Store, conns int, mustAccept bool) {
	_, sock, _ := startDaemon(b, store)
	// Minted before the clock starts.
	reqs := make([][]byte, b.N)
	for i := range reqs {
		user := fmt.Sprintf("user%d", i%1000)
		reqs[i] = []byte(fixture.Frame("auth:" + user + ":" + fixture.Host + ":" + fixture.Token(b, user)))
	}
	cs := make([]net.Conn, conns)
	for i := range cs {
		cs[i] = fixture.Dial(b, sock)
	}
	rtts := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	var failed sync.Once
	var refused atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies := bufio.NewReaderSize(c, 16)
			for j := i; j < len(reqs); j += conns {
				t0 := time.Now()
				c.Write(reqs[j])
				if yes, err := protocol.ReadReply(replies, protocol.Ejabberd); err != nil || !yes {
					if err == nil && !mustAccept {
						refused.Add(1)
						continue
					}
					failed.Do(func() { b.Errorf("request %d: reply %v, %v", j, yes, err) })
					return
				}
				rtts[i] = append(rtts[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, r := range rtts {
		all = append(all, r...)
	}
	if len(all) == 0 {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(refused.Load()), "refused")
	b.ReportMetric(float64(all[len(all)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Nanoseconds())/1e3, "p99-µs")
}
