//go:build unix

package verifier

import (
	"context"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/replay"
)

// scaleBatch is how many tokens the scaling benchmarks mint at a time,
// before the clock starts.
const scaleBatch = 200_000

// scaleRequest is one auth request of the scaling benchmarks.
type scaleRequest struct{ user, host, token string }

// scaleVerifier returns a verifier for hosts hosts (h0.test, h1.test...)
// at a fixed time, on a memory store of 2 M records already holding live
// live records.
func scaleVerifier(b testing.TB, hosts, live int) (*Verifier, func(n int) []scaleRequest) {
	b.Helper()
	at := time.Unix(1_800_000_000, 0)
	now := func() time.Time { return at }
	p := DefaultParams()
	hc := make(map[string]Host, hosts)
	for i := 0; i < hosts; i++ {
		var seed [10]byte
		binary.BigEndian.PutUint64(seed[:], uint64(i))
		hc[fmt.Sprintf("h%d.test", i)] = Host{
			TokenSecrets: [][]byte{[]byte(fmt.Sprintf("secret of host %d", i))},
			OTPSeeds:     []string{base32.StdEncoding.EncodeToString(seed[:])},
			IsUser:       true,
		}
	}
	store := replay.NewMemory(replay.MemoryOptions{Capacity: 2_000_000, TTL: p.ReplayTTL(), Now: now})
	for i := 0; i < live; i++ {
		var k replay.Key
		binary.BigEndian.PutUint64(k[:], uint64(i))
		store.Record(context.Background(), k)
	}
	v, err := New(Config{Params: p, Hosts: hc, Store: store, Now: now})
	if err != nil {
		b.Fatal(err)
	}
	minted := 0
	mint := func(n int) []scaleRequest {
		reqs := make([]scaleRequest, n)
		for i := range reqs {
			r := &reqs[i]
			r.user, r.host = fmt.Sprintf("user%d", minted%1000), fmt.Sprintf("h%d.test", minted%hosts)
			var err error
			if r.token, err = v.Mint(r.user, r.host, at, fmt.Sprintf("%032d", minted)); err != nil {
				b.Fatal(err)
			}
			minted++
		}
		return reqs
	}
	// Every host's window of codes is made once per time step: do it now.
	for _, r := range mint(hosts) {
		if res := v.Verify(context.Background(), r.user, r.host, r.token); !res.OK() {
			b.Fatalf("warm-up token refused: %s", res.Reason)
		}
	}
	return v, mint
}

// benchVerifyFresh verifies b.N fresh tokens, each accepted.
func benchVerifyFresh(b *testing.B, hosts, live int) {
	v, mint := scaleVerifier(b, hosts, live)
	ctx := context.Background()
	reqs := mint(min(b.N, scaleBatch))
	b.ReportAllocs()
	cpu := startCPUMeter(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%scaleBatch == 0 {
			b.StopTimer()
			t0 := cpuTime()
			reqs = mint(min(b.N-i, scaleBatch))
			cpu.stopped += cpuTime() - t0
			b.StartTimer()
		}
		r := reqs[i%scaleBatch]
		if res := v.Verify(ctx, r.user, r.host, r.token); !res.OK() {
			b.Fatalf("fresh token refused: %s", res.Reason)
		}
	}
	cpu.report()
}

// cpuMeter is cpuTimer leaving out the CPU time spent with the timer
// stopped (minting more tokens).
type cpuMeter struct {
	b       *testing.B
	start   time.Duration
	stopped time.Duration
}

func startCPUMeter(b *testing.B) *cpuMeter { return &cpuMeter{b: b, start: cpuTime()} }

func (m *cpuMeter) report() {
	m.b.ReportMetric(float64(cpuTime()-m.start-m.stopped)/float64(m.b.N), "cpu-ns/op")
}

// BenchmarkVerifyHosts: the cost of Verify with 1, 100 and 10,000
// configured hosts, tokens spread over all of them. It must stay flat.
func BenchmarkVerifyHosts(b *testing.B) {
	for _, hosts := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) { benchVerifyFresh(b, hosts, 0) })
	}
}

// BenchmarkVerifyLiveNonces: the cost of Verify with 0 and 1 M live
// records in the replay store. It must stay flat.
func BenchmarkVerifyLiveNonces(b *testing.B) {
	for _, live := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("live=%d", live), func(b *testing.B) { benchVerifyFresh(b, 1, live) })
	}
}

// TestVerifyAllocsFlatInHosts: with 10,000 hosts, tokens spread over all
// of them, Verify allocates no more than with one host, once each host's
// window of codes is made — also after garbage collections, which a
// serving daemon goes through all the time: no per-host state is lost to
// one and made again (a keyed HMAC state per secret, say, kept in a pool
// that each collection empties).
func TestVerifyAllocsFlatInHosts(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	const tokens = 10_000
	allocs := map[int]float64{}
	for _, hosts := range []int{1, 10_000} {
		v, mint := scaleVerifier(t, hosts, 0)
		reqs := mint(tokens + 1)
		runtime.GC()
		runtime.GC() // a pool keeps its items through one collection
		ctx, i := context.Background(), 0
		allocs[hosts] = testing.AllocsPerRun(tokens, func() {
			r := reqs[i]
			i++
			if res := v.Verify(ctx, r.user, r.host, r.token); !res.OK() {
				t.Fatalf("fresh token refused: %s", res.Reason)
			}
		})
	}
	if allocs[10_000] > allocs[1] {
		t.Errorf("Verify allocates %.2f times per token with 10,000 hosts, %.2f with one: per-host state made again",
			allocs[10_000], allocs[1])
	}
}
