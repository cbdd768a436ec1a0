package redis

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthd/tokenauthd/internal/fixture/peers"
	"github.com/tokenauthd/tokenauthd/replay"
)

// capacitySite is a Redis deployment under benchmark: its masters (whose
// CPU and commands are counted) and how to make a store on it.
type capacitySite struct {
	masters []*peers.RedisNode
	store   func(minReplicas int) *Store
}

// singleSite is one server with one replica.
func singleSite(b *testing.B) capacitySite {
	set := requireRedis(b)
	m := set.StartRedisNode(b, "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0")
	set.StartRedisNode(b, "--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", strconv.Itoa(m.Port))
	peers.Until(b, time.Minute, "the replica online", func() bool {
		out, err := m.CLI("INFO", "replication")
		return err == nil && countOnline(out) == 1
	})
	return capacitySite{masters: []*peers.RedisNode{m}, store: func(min int) *Store {
		return newTestRedisOpts(m.Addr(), Options{Prefix: "capacity:", TTL: testTTL, MinReplicas: min, Timeout: 2 * time.Second})
	}}
}

// clusterSite is a Cluster of three masters, each with a replica.
func clusterSite(b *testing.B) capacitySite {
	c := requireRedis(b).StartRedisCluster(b, 3, 1, 5*time.Second)
	var masters []*peers.RedisNode
	for _, a := range c.Masters(b) {
		masters = append(masters, c.Node(a))
	}
	return capacitySite{masters: masters, store: func(min int) *Store {
		return New(func(onConnect func(context.Context, *goredis.Conn) error) goredis.UniversalClient {
			return goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs(), OnConnect: onConnect})
		}, Options{Prefix: "capacity:", TTL: testTTL, MinReplicas: min, Timeout: 2 * time.Second})
	}}
}

// usage is what the masters did: CPU seconds and commands.
type usage struct {
	cpu      float64
	commands int64
}

func (s capacitySite) usage(b *testing.B) usage {
	var u usage
	for _, m := range s.masters {
		cpu, err := m.Info("cpu")
		if err != nil {
			b.Fatal(err)
		}
		st, err := m.Info("stats")
		if err != nil {
			b.Fatal(err)
		}
		us, _ := strconv.ParseFloat(cpu["used_cpu_user"], 64)
		sy, _ := strconv.ParseFloat(cpu["used_cpu_sys"], 64)
		n, _ := strconv.ParseInt(st["total_commands_processed"], 10, 64)
		u.cpu += us + sy
		u.commands += n
	}
	return u
}

// BenchmarkCapacity: N stores (N daemons) sharing one Redis, or one
// Cluster, each with 16 concurrent Records (fresh keys): records per
// second, the masters' CPU per record (Redis's own figures: one core
// carries 1e6 / cpu-µs/record per second) and the commands each record
// costs them. With min_replicas 1 each record also waits for a replica
// (WAIT, in the same round trip).
func BenchmarkCapacity(b *testing.B) {
	for _, site := range []struct {
		name string
		make func(*testing.B) capacitySite
	}{{"single", singleSite}, {"cluster", clusterSite}} {
		b.Run(site.name, func(b *testing.B) {
			s := site.make(b)
			for _, min := range []int{0, 1} {
				for _, daemons := range []int{1, 4} {
					b.Run(fmt.Sprintf("min_replicas=%d/daemons=%d", min, daemons), func(b *testing.B) {
						benchCapacity(b, s, min, daemons)
					})
				}
			}
		})
	}
}

var capacityRun atomic.Int64

func benchCapacity(b *testing.B, s capacitySite, min, daemons int) {
	stores := make([]*Store, daemons)
	for i := range stores {
		stores[i] = s.store(min)
		defer stores[i].Close()
		stores[i].Record(context.Background(), key(-1)) // connected, markers known
	}
	run := capacityRun.Add(1)
	var next atomic.Int64
	var failed atomic.Int64
	before := s.usage(b)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, st := range stores {
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > int64(b.N) {
						return
					}
					k := replay.HashKey([]byte(fmt.Sprint("capacity ", run, " ", i)))
					if fresh, err := st.Record(context.Background(), k); !fresh || err != nil {
						failed.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	after := s.usage(b)
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	b.ReportMetric((after.cpu-before.cpu)*1e6/float64(b.N), "redis-cpu-µs/record")
	b.ReportMetric(float64(after.commands-before.commands-int64(2*len(s.masters)))/float64(b.N), "commands/record")
	b.ReportMetric(float64(failed.Load()), "failed")
}

// BenchmarkMarkerCheck: one periodic check (every CheckInterval, 1 s by
// default, per daemon): one GET on one server; 64 GETs in one pipeline
// (one round trip per master) on a Cluster; with MinReplicas, INFO
// replication on each master too.
func BenchmarkMarkerCheck(b *testing.B) {
	for _, site := range []struct {
		name string
		make func(*testing.B) capacitySite
	}{{"single", singleSite}, {"cluster", clusterSite}} {
		b.Run(site.name, func(b *testing.B) {
			s := site.make(b)
			for _, min := range []int{0, 1} {
				b.Run(fmt.Sprintf("min_replicas=%d", min), func(b *testing.B) {
					st := s.store(min)
					defer st.Close()
					st.checkNow()
					before := s.usage(b)
					b.ResetTimer()
					for range b.N {
						st.checkNow()
					}
					b.StopTimer()
					after := s.usage(b)
					b.ReportMetric((after.cpu-before.cpu)*1e6/float64(b.N), "redis-cpu-µs/check")
				})
			}
		})
	}
}
