package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/replay"
)

// TestCheckConfigRedisReplicas: with redis_min_replicas, check-config
// warns of a Redis master with fewer replicas online than it plus one (a
// failover would leave the promoted replica short), and of one it cannot
// reach; with enough replicas, or without redis_min_replicas, it says
// nothing of them.
func TestCheckConfigRedisReplicas(t *testing.T) {
	master := fixture.StartRedis(t, 0)
	replica := fixture.StartRedis(t, 0)
	down := fixture.FreePort(t)
	for _, tc := range []struct {
		name     string
		port     int
		min      int
		replicas int // replicas following the master
		want     string
	}{
		{"no replica, min 1", master.Port, 1, 0, "has 0 replica(s) online; redis_min_replicas = 1 needs 1, and 2 to go on accepting tokens after a failover"},
		{"one replica, min 1", master.Port, 1, 1, "has 1 replica(s) online; redis_min_replicas = 1 needs 1, and 2"},
		{"one replica, min 0", master.Port, 0, 1, ""},
		{"unreachable", down, 1, 0, "cannot count Redis's replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.replicas > 0 {
				follow(t, replica.Port, master.Port)
			}
			path := fixture.WriteConfig(t, t.TempDir(), fmt.Sprintf(
				"[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:%d/0\"\nredis_min_replicas = %d\nredis_timeout_ms = 300\n", tc.port, tc.min))
			var out, errb fixture.Buffer
			if code := RunCheckConfig(context.Background(), &cli.Env{Stdout: &out, Stderr: &errb}, []string{"-config", path}); code != 0 {
				t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
			}
			got := out.String()
			if tc.want == "" && strings.Contains(got, "replica(s)") || tc.want != "" && !strings.Contains(got, "warning: replay: ") || !strings.Contains(got, tc.want) {
				t.Fatalf("check-config output:\n%s\nwant %q", got, tc.want)
			}
		})
	}
}

// follow makes the Redis on port a replica of the one on master, and waits
// until the master counts it online.
func follow(t *testing.T, port, master int) {
	t.Helper()
	m := fixture.RedisClient(master)
	defer m.Close()
	if err := m.ConfigSet(t.Context(), "repl-diskless-sync-delay", "0").Err(); err != nil { // sync at once, not in 5 s
		t.Fatal(err)
	}
	c := fixture.RedisClient(port)
	defer c.Close()
	if err := c.ReplicaOf(t.Context(), "127.0.0.1", fmt.Sprint(master)).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := m.Info(t.Context(), "replication").Result()
		if strings.Contains(info, "state=online") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica on %d is not online:\n%s", port, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shortStore is a replay store with shards short of replicas.
type shortStore struct {
	downStore
	short int
}

func (s shortStore) ReplicasShort() int { return s.short }

// TestMetricsReplicasShort: a store that watches its replicas exports how
// many shards are short; one that does not exports no such series.
func TestMetricsReplicasShort(t *testing.T) {
	for _, tc := range []struct {
		store replay.Store
		want  float64 // -1: no series
	}{
		{shortStore{short: 2}, 2},
		{shortStore{}, 0},
		{downStore{}, -1},
	} {
		if got := scrapeValue(t, newMetrics(tc.store), "tokenauthd_redis_replicas_short", nil); got != tc.want {
			t.Errorf("%T: tokenauthd_redis_replicas_short = %v, want %v", tc.store, got, tc.want)
		}
	}
}

// TestLogReplicas: a shard short of replicas is a warning naming it and
// the counts; one back is an info line.
func TestLogReplicas(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	logReplicas(log, "127.0.0.1:7001", 0, 1, true)
	logReplicas(log, "127.0.0.1:7001", 1, 1, false)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "shard=127.0.0.1:7001 replicas_online=0 redis_min_replicas=1") ||
		!strings.Contains(lines[1], "level=INFO") || !strings.Contains(lines[1], "replicas_online=1") {
		t.Fatalf("log:\n%s", buf.String())
	}
}
