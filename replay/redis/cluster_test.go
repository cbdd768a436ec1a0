package redis

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthd/tokenauthd/internal/fixture/peers"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/replay/storetest"
)

// requireRedis returns the peer set, and fails (TOKENAUTHD_E2E=1) or skips
// the test if its Redis server or CLI is missing.
func requireRedis(t testing.TB) peers.Set {
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
	return set
}

// newCluster starts a Redis Cluster of three masters without replicas.
func newCluster(t *testing.T) *peers.RedisCluster {
	t.Helper()
	return requireRedis(t).StartRedisCluster(t, 3, 0, 2*time.Second)
}

// newClusterStore is a store on the Cluster c with o.
func newClusterStore(c *peers.RedisCluster, o Options) *Store {
	return New(func(onConnect func(context.Context, *goredis.Conn) error) goredis.UniversalClient {
		return goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs(), OnConnect: onConnect})
	}, o)
}

// markEarlier marks the Cluster under prefix as a process an hour ago
// would have: a store started next does not take it for a loss.
func markEarlier(t *testing.T, c *peers.RedisCluster, prefix string) {
	t.Helper()
	then := func() time.Time { return time.Now().Add(-time.Hour) }
	s := newClusterStore(c, Options{Prefix: prefix, TTL: time.Minute, Now: then, Timeout: 10 * time.Second})
	defer s.Close()
	if _, err := s.Record(t.Context(), key(-1)); err != nil {
		t.Fatal(err)
	}
}

// flushMaster empties the master at addr (FLUSHALL empties one node of a
// Cluster): the loss of one shard's data.
func flushMaster(t *testing.T, c *peers.RedisCluster, addr string) {
	t.Helper()
	c.Node(addr).MustCLI(t, "FLUSHALL")
}

// TestConformanceCluster runs the Store contract on a real Redis Cluster
// of three masters. Its loss of all is a FLUSHALL on every master, its
// loss of some a FLUSHALL on one.
func TestConformanceCluster(t *testing.T) {
	c := newCluster(t)
	var n atomic.Int64
	storetest.Run(t, storetest.Suite{
		New: func(t *testing.T, o storetest.Options) replay.Store {
			prefix := fmt.Sprintf("conformance%d:", n.Add(1))
			markEarlier(t, c, prefix)
			return newClusterStore(c, Options{Prefix: prefix, TTL: o.TTL, Now: o.Now})
		},
		RealTime: true,
		RealTTL:  3 * time.Second,
		Forget: func(t *testing.T, _ replay.Store, _ time.Time) {
			for _, m := range c.Masters(t) {
				flushMaster(t, c, m)
			}
		},
		ForgetSome: func(t *testing.T, _ replay.Store) { flushMaster(t, c, c.Masters(t)[0]) },
	})
}

// TestClusterLossOnAnyMaster: whichever master of a Cluster loses its
// data, each record it held that the store would take for fresh again is
// covered by ForgottenAt, found on the request itself; the records of the
// other masters stay recorded.
func TestClusterLossOnAnyMaster(t *testing.T) {
	c := newCluster(t)
	for i, m := range c.Masters(t) {
		t.Run(fmt.Sprintf("master %d", i), func(t *testing.T) {
			prefix := fmt.Sprintf("lossonany%d:", i)
			markEarlier(t, c, prefix)
			s := newClusterStore(c, Options{Prefix: prefix, TTL: testTTL, CheckInterval: time.Hour})
			defer s.Close()
			const n = 300
			for i := range n {
				mustRecord(t, s, key(i), true)
			}
			if !s.ForgottenAt().IsZero() {
				t.Fatalf("a Cluster that lost nothing taken for a loss at %v", s.ForgottenAt())
			}
			before := time.Now()
			flushMaster(t, c, m)
			lost, kept := 0, 0
			for i := range n {
				fresh, err := s.Record(context.Background(), key(i))
				if fresh || err != nil {
					lost++
					if s.ForgottenAt().Before(before) {
						t.Fatalf("key %d: Record = %v, %v after %s lost its data; ForgottenAt = %v", i, fresh, err, m, s.ForgottenAt())
					}
					continue
				}
				kept++
			}
			if lost == 0 || kept == 0 {
				t.Fatalf("%d records taken for lost, %d for kept: want some of each (a third lost)", lost, kept)
			}
		})
	}
}

// TestClusterReshardIsNoLoss: slots moved from one master to another
// (redis-cli --cluster reshard) while records are made take their records
// and markers with them: no loss is reported, every record made before or
// during the move stays recorded, and none is taken for fresh twice.
func TestClusterReshardIsNoLoss(t *testing.T) {
	c := newCluster(t)
	prefix := "reshard:"
	markEarlier(t, c, prefix)
	s := newClusterStore(c, Options{Prefix: prefix, TTL: testTTL, Timeout: 2 * time.Second, CheckInterval: 50 * time.Millisecond})
	defer s.Close()
	const before = 300
	for i := range before {
		mustRecord(t, s, key(i), true)
	}
	view, err := c.View()
	if err != nil {
		t.Fatal(err)
	}
	var from, to peers.ClusterNode
	for _, n := range view {
		switch {
		case !n.Master:
		case from.ID == "":
			from = n
		case to.ID == "":
			to = n
		}
	}
	done := make(chan struct{})
	var during atomic.Int64
	var stop atomic.Bool
	recorded := make(chan int, 100_000)
	go func() {
		defer close(done)
		for i := before; ; i++ {
			fresh, err := s.Record(context.Background(), key(i))
			if fresh && err == nil {
				recorded <- i
				during.Add(1)
			}
			if stop.Load() {
				return
			}
		}
	}()
	masters := func() []string {
		var m []string
		for _, k := range s.markers {
			m = append(m, c.MasterOf(t, k))
		}
		return m
	}
	was := masters()
	c.Nodes[0].MustCLI(t, "--cluster", "reshard", c.Nodes[0].Addr(), "--cluster-from", from.ID, "--cluster-to", to.ID,
		"--cluster-slots", "1500", "--cluster-yes")
	stop.Store(true)
	<-done
	close(recorded)
	moved := 0
	for b, m := range masters() {
		if m != was[b] {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no bucket moved: the test proves nothing")
	}
	if !s.ForgottenAt().IsZero() {
		t.Fatalf("slots moved between masters taken for a loss at %v", s.ForgottenAt())
	}
	for i := range before {
		mustRecord(t, s, key(i), false)
	}
	for i := range recorded {
		mustRecord(t, s, key(i), false)
	}
	t.Logf("%d buckets moved, %d records made during the move", moved, during.Load())
}
