package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthd/tokenauthd/internal/fixture/peers"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/replay/storetest"
)

const testTTL = 2 * time.Minute

func key(i int) replay.Key { return replay.HashKey([]byte(fmt.Sprint("key ", i))) }

func mustRecord(t *testing.T, s replay.Store, k replay.Key, wantFresh bool) {
	t.Helper()
	fresh, err := s.Record(context.Background(), k)
	if err != nil {
		t.Fatalf("Record(%v): %v", k, err)
	}
	if fresh != wantFresh {
		t.Fatalf("Record(%v) fresh = %v, want %v", k, fresh, wantFresh)
	}
}

// redisProc is a real redis-server (or valkey-server: the peer set's
// server) on a loopback port, stopped by its PID.
type redisProc struct {
	port  int
	peers peers.Set
	cmd   *exec.Cmd
}

// startRedis starts the peer set's redis-server (peers.Get) on port (a free
// one if 0) and checks that it is the set's version. It fails the test if
// the server is missing and TOKENAUTHD_E2E=1, and skips it otherwise.
func startRedis(t testing.TB, port int) *redisProc {
	t.Helper()
	set := peers.Get(t)
	for _, prog := range []string{set.RedisServer, set.RedisCLI} {
		if _, err := os.Stat(prog); err != nil {
			if os.Getenv("TOKENAUTHD_E2E") == "1" {
				t.Fatalf("required test peer %s is missing (scripts/test installs it)", prog)
			}
			t.Skipf("%s missing; run scripts/test to install it", prog)
		}
	}
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	cmd := exec.Command(set.RedisServer, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &redisProc{port: port, peers: set, cmd: cmd}
	t.Cleanup(p.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", p.addr())
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s", set.RedisServer, p.addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := set.CheckRedis(port); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *redisProc) addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

func (p *redisProc) stop() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

func newTestRedis(addr, prefix string, timeout time.Duration) *Store {
	return newTestRedisOpts(addr, Options{Prefix: prefix, TTL: testTTL, Timeout: timeout})
}

// newTestRedisOpts is a Redis store on the server at addr, with o.
func newTestRedisOpts(addr string, o Options) *Store {
	return New(func(onConnect func(context.Context, *goredis.Conn) error) goredis.UniversalClient {
		return goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: []string{addr}, OnConnect: onConnect})
	}, o)
}

// TestConformance runs the Store contract on a real redis-server, each
// store on a prefix of its own, marked as by an earlier process (a first
// start is a loss). Records expire on Redis's clock: real time. Its loss
// is a FLUSHALL.
func TestConformance(t *testing.T) {
	rp := startRedis(t, 0)
	raw := goredis.NewClient(&goredis.Options{Addr: rp.addr()})
	defer raw.Close()
	var n atomic.Int64
	storetest.Run(t, storetest.Suite{
		New: func(t *testing.T, o storetest.Options) replay.Store {
			prefix := fmt.Sprintf("conformance%d:", n.Add(1))
			if err := raw.Set(t.Context(), prefix+markerSuffix, "earlier", 0).Err(); err != nil {
				t.Fatal(err)
			}
			return newTestRedisOpts(rp.addr(), Options{Prefix: prefix, TTL: o.TTL, Now: o.Now})
		},
		RealTime: true,
		Forget: func(t *testing.T, _ replay.Store, _ time.Time) {
			if err := raw.FlushAll(t.Context()).Err(); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// TestRedisShared: records are shared by every store on the same server
// and prefix, separate across prefixes, with the TTL set on Redis; the
// marker never expires.
func TestRedisShared(t *testing.T) {
	rp := startRedis(t, 0)
	ctx := context.Background()
	a := newTestRedis(rp.addr(), "", 0)
	b := newTestRedis(rp.addr(), "", 0) // another node
	other := newTestRedis(rp.addr(), "othersite:", 0)
	defer a.Close()
	defer b.Close()
	defer other.Close()

	mustRecord(t, a, key(1), true)
	mustRecord(t, b, key(1), false) // seen through another client
	mustRecord(t, other, key(1), true)
	if seen, err := b.Seen(ctx, key(1)); err != nil || !seen {
		t.Errorf("Seen(recorded through another client) = %v, %v; want true", seen, err)
	}
	raw := goredis.NewClient(&goredis.Options{Addr: rp.addr()})
	defer raw.Close()
	pttl, err := raw.PTTL(ctx, DefaultPrefix+key(1).String()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pttl <= testTTL-10*time.Second || pttl > testTTL {
		t.Errorf("PTTL = %v, want about %v", pttl, testTTL)
	}
	if n, _ := raw.DBSize(ctx).Result(); n != 4 {
		t.Errorf("DBSIZE = %d, want 4 (a record and a marker per prefix)", n)
	}
	for _, prefix := range []string{DefaultPrefix, "othersite:"} {
		if ttl, err := raw.PTTL(ctx, prefix+"epoch").Result(); err != nil || ttl != -1 {
			t.Errorf("marker %sepoch: PTTL = %v, %v; want -1 (never expires)", prefix, ttl, err)
		}
	}
}

// TestRedisDownAndBack: a stopped Redis makes Record fail with
// replay.ErrUnavailable within the bound; once it is back, Record works again on
// the same client.
func TestRedisDownAndBack(t *testing.T) {
	rp := startRedis(t, 0)
	const bound = 300 * time.Millisecond
	s := newTestRedis(rp.addr(), "", bound)
	defer s.Close()
	mustRecord(t, s, key(1), true)

	rp.stop()
	for i := 0; i < 3; i++ {
		start := time.Now()
		fresh, err := s.Record(context.Background(), key(100+i))
		if fresh || !errors.Is(err, replay.ErrUnavailable) {
			t.Fatalf("Redis down: Record = %v, %v; want false, replay.ErrUnavailable", fresh, err)
		}
		// The bound is the feature: generous slack.
		if el := time.Since(start); el > bound+2*time.Second {
			t.Fatalf("Redis down: Record took %v, bound %v", el, bound)
		}
	}

	startRedis(t, rp.port)
	// The restarted Redis is empty (no persistence in this test).
	mustRecord(t, s, key(200), true)
	mustRecord(t, s, key(200), false)
}

// BenchmarkRedis compares one Record (SET NX PX) with one bare Redis round
// trip (PING) on the same client and a loopback redis-server: the store
// costs one round trip per token.
func BenchmarkRedis(b *testing.B) {
	rp := startRedis(b, 0)
	s := newTestRedis(rp.addr(), "", 0)
	defer s.Close()
	ctx := context.Background()
	b.Run("ping", func(b *testing.B) {
		d := make([]time.Duration, b.N)
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if err := s.Ping(ctx); err != nil {
				b.Fatal(err)
			}
			d[i] = time.Since(t0)
		}
		reportP50(b, d)
	})
	b.Run("record", func(b *testing.B) {
		keys := make([]replay.Key, b.N)
		for i := range keys {
			keys[i] = replay.HashKey([]byte(fmt.Sprint("bench ", i, " ", time.Now().UnixNano())))
		}
		d := make([]time.Duration, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if fresh, err := s.Record(ctx, keys[i]); err != nil || !fresh {
				b.Fatal(fresh, err)
			}
			d[i] = time.Since(t0)
		}
		reportP50(b, d)
	})
	b.Run("memory", func(b *testing.B) {
		m := replay.NewMemory(replay.MemoryOptions{Capacity: 1_000_000, TTL: testTTL})
		keys := make([]replay.Key, b.N)
		for i := range keys {
			keys[i] = replay.HashKey([]byte(fmt.Sprint("bench ", i)))
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			m.Record(ctx, keys[i])
		}
	})
}

// reportP50 reports the median of d in microseconds.
func reportP50(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds())/1e3, "p50-µs")
}

// TestMarksConformance runs the Marks contract on a real redis-server,
// each store on a prefix of its own. Marks expire on Redis's clock.
func TestMarksConformance(t *testing.T) {
	rp := startRedis(t, 0)
	var n atomic.Int64
	storetest.RunMarks(t, storetest.MarksSuite{
		New: func(t *testing.T, now func() time.Time) replay.Marks {
			c := goredis.NewClient(&goredis.Options{Addr: rp.addr()})
			return NewMarks(c, MarksOptions{Prefix: fmt.Sprintf("marks%d:", n.Add(1)), Now: now})
		},
		RealTime:  true,
		Precision: time.Millisecond,
	})
}

// TestMarksSharedAndApart: two nodes on one Redis see each other's marks;
// a mark holds no user's name, only a hash; replay records and marks live
// under names of their own.
func TestMarksSharedAndApart(t *testing.T) {
	rp := startRedis(t, 0)
	ctx := t.Context()
	a := NewMarks(goredis.NewClient(&goredis.Options{Addr: rp.addr()}), MarksOptions{Prefix: "p:"})
	b := NewMarks(goredis.NewClient(&goredis.Options{Addr: rp.addr()}), MarksOptions{Prefix: "p:"})
	defer a.Close()
	defer b.Close()
	now := time.Now().Truncate(time.Millisecond)
	k := replay.HashKey([]byte("alice"))
	if err := a.Mark(ctx, k, now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := b.Mark(ctx, k, now.Add(-time.Minute), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if at, err := b.Marked(ctx, k); err != nil || !at.Equal(now) {
		t.Fatalf("b.Marked = %v, %v; want a's %v", at, err, now)
	}
	raw := goredis.NewClient(&goredis.Options{Addr: rp.addr()})
	defer raw.Close()
	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil || len(keys) != 1 || keys[0] != MarksKey("p:", k) {
		t.Fatalf("keys = %v, %v; want only %s", keys, err, MarksKey("p:", k))
	}
	if ttl := raw.PTTL(ctx, keys[0]).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("PTTL = %v, want about an hour", ttl)
	}
}
