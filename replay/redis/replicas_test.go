package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// TestCountOnline: only replicas INFO says are online count.
func TestCountOnline(t *testing.T) {
	for _, tc := range []struct {
		info string
		want int
	}{
		{"# Replication\r\nrole:master\r\nconnected_slaves:0\r\n", 0},
		{"role:master\r\nconnected_slaves:2\r\nslave0:ip=127.0.0.1,port=1,state=online,offset=1,lag=0\r\nslave1:ip=127.0.0.1,port=2,state=wait_bgsave,offset=0,lag=0\r\n", 1},
		{"slave0:ip=127.0.0.1,port=1,state=online\r\nslave1:ip=127.0.0.1,port=2,state=online\r\nslave_read_only:1\r\n", 2},
		{"role:slave\r\nmaster_host:127.0.0.1\r\nslave_repl_offset:5\r\n", 0}, // a replica's own lines
	} {
		if got := countOnline(tc.info); got != tc.want {
			t.Errorf("countOnline(%q) = %d, want %d", tc.info, got, tc.want)
		}
	}
}

// replicaEvent is one OnReplicas call.
type replicaEvent struct {
	shard  string
	online int
	short  bool
}

// TestReplicasShortSaidOnce: with MinReplicas, a master short of replicas
// is reported once, and once again when a replica follows it; checks that
// find no change report nothing.
func TestReplicasShortSaidOnce(t *testing.T) {
	rp := startRedis(t, 0)
	events := make(chan replicaEvent, 100)
	s := newTestRedisOpts(rp.addr(), Options{TTL: testTTL, MinReplicas: 1, CheckInterval: time.Hour,
		OnReplicas: func(shard string, online int, short bool) { events <- replicaEvent{shard, online, short} }})
	defer s.Close()
	for range 3 {
		s.checkNow()
	}
	if got := drain(events); len(got) != 1 || got[0] != (replicaEvent{"master", 0, true}) {
		t.Fatalf("no replica, three checks: events %v, want one short", got)
	}
	if n := s.ReplicasShort(); n != 1 {
		t.Fatalf("ReplicasShort = %d, want 1", n)
	}
	replica := startRedis(t, 0)
	redisCLI(t, replica.port, "replicaof", "127.0.0.1", fmt.Sprint(rp.port))
	for !strings.Contains(redisCLI(t, rp.port, "info", "replication"), "state=online") {
		time.Sleep(50 * time.Millisecond)
	}
	for range 3 {
		s.checkNow()
	}
	if got := drain(events); len(got) != 1 || got[0] != (replicaEvent{"master", 1, false}) {
		t.Fatalf("a replica online, three checks: events %v, want one back", got)
	}
	if n := s.ReplicasShort(); n != 0 {
		t.Fatalf("ReplicasShort = %d, want 0", n)
	}
}

func drain(c chan replicaEvent) []replicaEvent {
	var got []replicaEvent
	for {
		select {
		case e := <-c:
			got = append(got, e)
		default:
			return got
		}
	}
}

// redisError is an error reply of Redis.
type redisError string

func (e redisError) Error() string { return string(e) }
func (redisError) RedisError()     {}

// TestClearErrors: what Redis answers while nodes restart or fail over is
// said in words an admin can act on, the error kept; a script's reply that
// is no number is an error, never a verdict.
func TestClearErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{redisError("LOADING Redis is loading the dataset in memory"), "loading its data"},
		{redisError("CLUSTERDOWN The cluster is down"), "Cluster is down"},
		{redisError("TRYAGAIN Multiple keys request during rehashing of slot"), "resharding"},
		{redisError("MOVED 3999 127.0.0.1:6381"), "moved the record's slot"},
		{redisError("READONLY You can't write against a read only replica."), "replica answered"},
		{redisError("NOAUTH Authentication required."), "redis_password_file"},
		{redisError("ERR something new"), "Redis answered with an error"},
		{context.DeadlineExceeded, "within redis_timeout_ms"},
	} {
		cmd := goredis.NewCmd(context.Background())
		cmd.SetErr(tc.err)
		_, err := scriptReply(cmd)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.err) {
			t.Errorf("scriptReply(error %q) = %v, want an error saying %q, wrapping it", tc.err, err, tc.want)
		}
		if strings.Contains(fmt.Sprint(unavailable(err)), "unexpected type") {
			t.Errorf("%v: go-redis's words kept", err)
		}
	}
	for _, v := range []any{nil, "1", []any{int64(1)}} {
		cmd := goredis.NewCmd(context.Background())
		cmd.SetVal(v)
		n, err := scriptReply(cmd)
		if err == nil || strings.Contains(err.Error(), "unexpected type") {
			t.Errorf("scriptReply(%#v) = %d, %v; want an error of the store's words", v, n, err)
		}
	}
	cmd := goredis.NewCmd(context.Background())
	cmd.SetVal(int64(1))
	if n, err := scriptReply(cmd); n != 1 || err != nil {
		t.Errorf("scriptReply(1) = %d, %v", n, err)
	}
}
