package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthd/tokenauthd/internal/fixture/peers"
	"github.com/tokenauthd/tokenauthd/internal/testclock"
	"github.com/tokenauthd/tokenauthd/replay"
)

// dropProxy forwards TCP connections to a server. Armed with a pattern, it
// lets the next command that holds it reach the server, then drops the
// server's reply and closes that connection: a reply lost on the network,
// after which go-redis resends the command on a new connection.
type dropProxy struct {
	l       net.Listener
	target  string
	mu      sync.Mutex
	pattern []byte
	dropped int
}

func startDropProxy(t *testing.T, target string) *dropProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{l: l, target: target}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *dropProxy) addr() string { return p.l.Addr().String() }

func (p *dropProxy) arm(pattern string) {
	p.mu.Lock()
	p.pattern = []byte(pattern)
	p.mu.Unlock()
}

func (p *dropProxy) drops() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// serve forwards one connection. armed is set when the client sent the
// pattern, before the command goes on to the server: the next bytes from
// the server are its reply (go-redis waits for each reply before it sends
// the next command).
func (p *dropProxy) serve(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	armed := false // under p.mu
	go func() {
		defer s.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.pattern != nil && bytes.Contains(buf[:n], p.pattern) {
				p.pattern, armed = nil, true
			}
			p.mu.Unlock()
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	defer c.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		drop := armed
		if drop {
			p.dropped++
		}
		p.mu.Unlock()
		if drop {
			return // the reply is lost, and the connection with it
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

// TestRedisRetryAfterLostReply: the record reached Redis but its reply was
// lost; go-redis sends it again on a new connection, which finds the key
// its own first attempt wrote. That is still the first use of the token:
// fresh. Another Record of the same key is refused.
func TestRedisRetryAfterLostReply(t *testing.T) {
	rp := startRedis(t, 0)
	proxy := startDropProxy(t, rp.addr())
	s := newTestRedisOpts(proxy.addr(), Options{TTL: testTTL, Timeout: 2 * time.Second})
	defer s.Close()
	mustRecord(t, s, key(1), true) // connected, marker made

	proxy.arm(key(2).String())
	fresh, err := s.Record(context.Background(), key(2))
	if proxy.drops() != 1 {
		t.Fatalf("the proxy dropped %d replies, want 1", proxy.drops())
	}
	if err != nil || !fresh {
		t.Fatalf("Record whose first reply was lost = %v, %v; want fresh", fresh, err)
	}
	mustRecord(t, s, key(2), false)
	other := newTestRedis(rp.addr(), "", 0) // another process
	defer other.Close()
	mustRecord(t, other, key(2), false)
}

// redisCLI runs a command on the server at port, with the peer set's CLI.
func redisCLI(t *testing.T, port int, args ...string) string {
	t.Helper()
	out, err := exec.Command(peers.Get(t).RedisCLI, append([]string{"-p", fmt.Sprint(port)}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestRedisForgets: every way Redis loses records is noticed, on the
// request that would otherwise take a lost record for fresh, and dated at
// that moment; a Redis that lost nothing is not taken for one that did.
func TestRedisForgets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lose   func(t *testing.T, rp *redisProc)
		forgot bool
		seen   bool // ask Seen rather than Record
	}{
		{name: "nothing lost", lose: func(*testing.T, *redisProc) {}},
		{name: "restart without persistence", lose: func(t *testing.T, rp *redisProc) {
			rp.stop()
			startRedis(t, rp.port)
		}, forgot: true},
		{name: "flushall", lose: func(t *testing.T, rp *redisProc) { redisCLI(t, rp.port, "flushall") }, forgot: true},
		{name: "flushall, then seen", lose: func(t *testing.T, rp *redisProc) { redisCLI(t, rp.port, "flushall") }, forgot: true, seen: true},
		{name: "marker made again by another process", lose: func(t *testing.T, rp *redisProc) {
			redisCLI(t, rp.port, "flushall")
			redisCLI(t, rp.port, "set", DefaultPrefix+"epoch", "another")
		}, forgot: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp := startRedis(t, 0)
			clk := testclock.New(time.Unix(1_700_000_000, 0))
			var whys []string
			var mu sync.Mutex
			o := Options{TTL: testTTL, Now: clk.Now, CheckInterval: time.Hour,
				OnForget: func(at time.Time, why string) { mu.Lock(); whys = append(whys, why); mu.Unlock() }}
			redisCLI(t, rp.port, "set", DefaultPrefix+"epoch", "set-up")
			s := newTestRedisOpts(rp.addr(), o)
			defer s.Close()
			mustRecord(t, s, key(1), true)
			if !s.ForgottenAt().IsZero() || len(whys) != 0 {
				t.Fatalf("a Redis holding the marker taken for one that lost records: %v", whys)
			}
			clk.Add(time.Minute)
			tc.lose(t, rp)
			var fresh bool
			var err error
			if tc.seen {
				var seen bool
				seen, err = s.Seen(context.Background(), key(1))
				fresh = !seen
			} else {
				fresh, err = s.Record(context.Background(), key(1))
			}
			if tc.forgot {
				// Record or Seen may report the key as new (it is lost),
				// but the store says it forgot, by then.
				if !s.ForgottenAt().Equal(clk.Now()) || len(whys) == 0 {
					t.Fatalf("after the loss: key(1) fresh %v (%v); forgotten at %v, want %v", fresh, err, s.ForgottenAt(), clk.Now())
				}
				return
			}
			if fresh || err != nil || !s.ForgottenAt().IsZero() {
				t.Fatalf("nothing lost: fresh %v, %v, forgotten at %v", fresh, err, s.ForgottenAt())
			}
		})
	}
}

// TestRedisForgetsFirstStart: with no marker, a new Redis cannot be told
// from one that lost its data: a loss, dated at the first connection. Two
// stores adopt one marker; the second, started within a record's lifetime
// of the marker's making, inherits the loss (records lost before it may
// still be replayed through it), and one started later does not.
func TestRedisForgetsFirstStart(t *testing.T) {
	rp := startRedis(t, 0)
	a := newTestRedis(rp.addr(), "", 0)
	defer a.Close()
	mustRecord(t, a, key(1), true)
	if a.ForgottenAt().IsZero() {
		t.Fatal("first start on an empty Redis: not taken for a loss")
	}
	b := newTestRedis(rp.addr(), "", 0)
	defer b.Close()
	mustRecord(t, b, key(1), false)
	if b.ForgottenAt().Before(a.ForgottenAt()) || b.ForgottenAt().After(time.Now()) {
		t.Fatalf("second store on a just-marked Redis: forgotten at %v, want the marker's making (%v or after)", b.ForgottenAt(), a.ForgottenAt())
	}
	// A marker made long ago: no loss.
	c := goredis.NewClient(&goredis.Options{Addr: rp.addr()})
	defer c.Close()
	old := newMarker(time.Now().Add(-time.Hour))
	if err := c.Set(context.Background(), DefaultPrefix+markerSuffix, old, 0).Err(); err != nil {
		t.Fatal(err)
	}
	d := newTestRedis(rp.addr(), "", 0)
	defer d.Close()
	mustRecord(t, d, key(2), true)
	if !d.ForgottenAt().IsZero() {
		t.Fatalf("a store on a Redis marked an hour ago: forgotten at %v", d.ForgottenAt())
	}
}

// TestRedisPeriodicCheck: a FLUSHALL keeps the connections, and no request
// may come for a while: the periodic check notices it.
func TestRedisPeriodicCheck(t *testing.T) {
	rp := startRedis(t, 0)
	forgot := make(chan string, 10)
	s := newTestRedisOpts(rp.addr(), Options{TTL: testTTL, CheckInterval: 20 * time.Millisecond,
		OnForget: func(_ time.Time, why string) { forgot <- why }})
	defer s.Close()
	mustRecord(t, s, key(1), true)
	<-forgot // the first start
	redisCLI(t, rp.port, "flushall")
	why := <-forgot // blocks until noticed; the test's timeout bounds it
	if !strings.Contains(why, "no marker") {
		t.Errorf("why = %q", why)
	}
}

// TestRedisMinReplicas: with MinReplicas, a record no replica acknowledged
// is refused as unavailable; once a replica follows, records are fresh.
func TestRedisMinReplicas(t *testing.T) {
	rp := startRedis(t, 0)
	s := newTestRedisOpts(rp.addr(), Options{TTL: testTTL, Timeout: 2 * time.Second, MinReplicas: 1})
	defer s.Close()
	fresh, err := s.Record(context.Background(), key(1))
	if fresh || !errors.Is(err, replay.ErrUnavailable) || !strings.Contains(err.Error(), "replicas") {
		t.Fatalf("no replica: Record = %v, %v; want refused, unavailable", fresh, err)
	}
	replica := startRedis(t, 0)
	redisCLI(t, replica.port, "replicaof", "127.0.0.1", fmt.Sprint(rp.port))
	// Until the master counts the replica as online (the test's timeout
	// bounds the wait).
	for !strings.Contains(redisCLI(t, rp.port, "info", "replication"), "state=online") {
		time.Sleep(50 * time.Millisecond)
	}
	mustRecord(t, s, key(2), true)
	mustRecord(t, s, key(2), false)
	// The record is on the replica.
	rc := goredis.NewClient(&goredis.Options{Addr: replica.addr()})
	defer rc.Close()
	if n, err := rc.Exists(context.Background(), DefaultPrefix+key(2).String()).Result(); err != nil || n != 1 {
		t.Errorf("replica: EXISTS = %d, %v", n, err)
	}
}
