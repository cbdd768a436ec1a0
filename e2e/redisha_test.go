package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/fixture/peers"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// Redis failing under two daemons that share it (a Sentinel group, a
// Cluster): fresh logins go on at a steady pace through both, every token
// accepted is replayed at once to both nodes, again a few seconds later,
// and again after the fault. No replay may ever be accepted, and logins
// must come back within backBound of the fault. The tokens live 5 s steps
// (interval 5, drift 1), so that a loss's refusals last 5 to 10 s rather
// than 30 to 60 s: the same rule, shorter.

// backBound is how long after a fault fresh logins must be accepted again.
const backBound = 60 * time.Second

// haToken is the [token] section of the sites under test.
const haToken = "[token]\ninterval = 5\ndrift = 1\n"

// haSite is two daemons sharing one Redis deployment, and the logins
// asked of them.
type haSite struct {
	t     *testing.T
	v     *verifier.Offline // mints tokens with the site's parameters
	nodes [2]*serveProc

	next        atomic.Int64 // the next user's number
	logins      atomic.Int64 // fresh logins asked
	refusals    atomic.Int64 // fresh logins refused
	lastRefusal atomic.Int64 // Unix nanoseconds of the last fresh login refused
	sinceRefuse atomic.Int64 // fresh logins accepted since then
	replays     atomic.Int64 // replays asked
	badReplays  atomic.Int64 // replays accepted: must stay 0

	mu       sync.Mutex
	accepted []acceptedToken
	firstRef time.Time // the first refusal after the last mark
	mark     time.Time
}

// acceptedToken is a token one node accepted.
type acceptedToken struct {
	user, tok string
	at        time.Time
	node      int
	delayed   bool // replayed again a few seconds later
}

// startHASite starts two daemons on the configuration extra (a [replay]
// section) added to fixture.Host's, with haToken.
func startHASite(t *testing.T, extra string) *haSite {
	t.Helper()
	dir := t.TempDir()
	cfgPath := fixture.WriteConfig(t, dir, haToken+extra)
	cfg, err := setup.Load(cfgPath, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := cfg.NewOffline()
	if err != nil {
		t.Fatal(err)
	}
	s := &haSite{t: t, v: v}
	for i := range s.nodes {
		s.nodes[i] = startServe(t, cfgPath, filepath.Join(dir, fmt.Sprintf("node%d.sock", i)))
	}
	return s
}

// ask asks node an auth request on a connection of its own; an error
// (no answer) is a no.
func (s *haSite) ask(node int, user, tok string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := protocol.Dial(ctx, "unix", s.nodes[node].sock, protocol.Generic)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	ok, err := c.Ask(protocol.Request{Command: protocol.CmdAuth, User: user, Server: fixture.Host, Password: tok})
	return ok && err == nil
}

// replay asks both nodes for tok again, and counts a yes.
func (s *haSite) replay(a acceptedToken, when string) {
	for node := range s.nodes {
		s.replays.Add(1)
		if s.ask(node, a.user, a.tok) {
			s.badReplays.Add(1)
			s.t.Errorf("replay %s accepted by node %d: %s's token accepted by node %d at %s", when, node, a.user, a.node, a.at.Format(time.RFC3339Nano))
		}
	}
}

// login asks one fresh login of a node, and replays it at once if it is
// accepted.
func (s *haSite) login() {
	n := s.next.Add(1)
	user := fmt.Sprintf("u%d", n)
	node := int(n % 2)
	tok, err := s.v.Mint(user, fixture.Host, time.Now(), "")
	if err != nil {
		s.t.Error(err)
		return
	}
	s.logins.Add(1)
	if !s.ask(node, user, tok) {
		now := time.Now()
		s.refusals.Add(1)
		s.lastRefusal.Store(now.UnixNano())
		s.sinceRefuse.Store(0)
		s.mu.Lock()
		if s.firstRef.IsZero() {
			s.firstRef = now
		}
		s.mu.Unlock()
		return
	}
	s.sinceRefuse.Add(1)
	a := acceptedToken{user: user, tok: tok, at: time.Now(), node: node}
	s.replay(a, "at once")
	s.mu.Lock()
	s.accepted = append(s.accepted, a)
	s.mu.Unlock()
}

// load asks logins from workers until ctx ends, a pause between each
// worker's logins, and replays each accepted token again after delay.
func (s *haSite) load(ctx context.Context, workers int, pause, delay time.Duration) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				s.login()
				time.Sleep(pause)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			time.Sleep(250 * time.Millisecond)
			for _, a := range s.due(delay) {
				s.replay(a, "later")
			}
		}
	}()
	return &wg
}

// due returns the accepted tokens older than delay not yet replayed later,
// and marks them so.
func (s *haSite) due(delay time.Duration) []acceptedToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d []acceptedToken
	for i := range s.accepted {
		if a := &s.accepted[i]; !a.delayed && time.Since(a.at) >= delay {
			a.delayed = true
			d = append(d, *a)
		}
	}
	return d
}

// since returns the tokens accepted after t.
func (s *haSite) since(t time.Time) []acceptedToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d []acceptedToken
	for _, a := range s.accepted {
		if a.at.After(t) {
			d = append(d, a)
		}
	}
	return d
}

// markFault notes the moment of a fault: refusals are counted from it.
func (s *haSite) markFault() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mark, s.firstRef = time.Now(), time.Time{}
	return s.mark
}

// window is what a fault did to fresh logins: when the first and last
// were refused after it (zero if none), and when they came back.
type window struct {
	first, last, back time.Duration
	refused           int64
}

// waitBack waits until fresh logins have been accepted without a refusal
// for two seconds (at least 20 of them) and returns the refusal window
// since fault; it fails the test if that takes longer than backBound.
func (s *haSite) waitBack(fault time.Time, refusedBefore int64) window {
	s.t.Helper()
	for {
		last := time.Unix(0, s.lastRefusal.Load())
		if last.Before(fault) {
			last = fault
		}
		if time.Since(last) >= 2*time.Second && s.sinceRefuse.Load() >= 20 {
			s.mu.Lock()
			first := s.firstRef
			s.mu.Unlock()
			w := window{back: last.Sub(fault), refused: s.refusals.Load() - refusedBefore}
			if !first.IsZero() {
				w.first, w.last = first.Sub(fault), last.Sub(fault)
			}
			return w
		}
		if time.Since(fault) > backBound {
			s.t.Fatalf("fresh logins not back %v after the fault (last refusal %v after it)", backBound, last.Sub(fault))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkLogs fails the test if a daemon's log holds go-redis's words for a
// reply it did not expect.
func (s *haSite) checkLogs() {
	for i, p := range s.nodes {
		if l := p.log(); strings.Contains(l, "unexpected type") {
			s.t.Errorf("node %d's log has an unexplained Redis error:\n%s", i, l)
		}
	}
}

// count returns how many times the daemons' logs say want.
func (s *haSite) count(want string) int {
	n := 0
	for _, p := range s.nodes {
		n += strings.Count(p.log(), want)
	}
	return n
}

// fault runs one fault under load: logins for lead before it, then the
// fault, then logins until they are back; then every token accepted in
// the last steps before the fault is replayed to both nodes. It returns
// the refusal window.
func (s *haSite) fault(name string, lead time.Duration, do func()) window {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	wg := s.load(ctx, 3, 20*time.Millisecond, 3*time.Second)
	defer func() { cancel(); wg.Wait() }()
	time.Sleep(lead)
	refusedBefore := s.refusals.Load()
	loginsBefore := s.logins.Load()
	at := s.markFault()
	do()
	// Every token still in its window, to both nodes, at once after the
	// fault and again once logins are back.
	before := s.since(at.Add(-10 * time.Second))
	for _, a := range before {
		s.replay(a, "after the fault")
	}
	w := s.waitBack(at, refusedBefore)
	for _, a := range before {
		s.replay(a, "after logins came back")
	}
	s.t.Logf("%s: %d fresh logins, %d refused: from %.1f s to %.1f s after the fault; back %.1f s after it; %d replays asked so far, %d accepted",
		name, s.logins.Load()-loginsBefore, w.refused, w.first.Seconds(), w.last.Seconds(), w.back.Seconds(), s.replays.Load(), s.badReplays.Load())
	return w
}

// TestRedisSentinelFailover: a Sentinel group (a master, two replicas,
// three Sentinels) under two daemons with redis_min_replicas = 1; the
// master is SIGKILLed under load, a replica is promoted, the old master
// restarted as a supervisor would (it becomes a replica). No replay is
// accepted; logins are back within the bound.
func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	set := peers.Get(t)
	fixture.RequirePeer(t, set.RedisServer, set.RedisCLI)
	g := set.StartRedisSentinel(t, 2, 3, time.Second)
	fixture.MarkRedis(t, g.Nodes[0].Port, "tokenauthd:")
	s := startHASite(t, fmt.Sprintf("[replay]\nstore = \"redis\"\nredis_addrs = [%s]\nredis_master = %q\nredis_min_replicas = 1\n",
		quoteAll(g.SentinelAddrs()), peers.SentinelMaster))
	old := g.Nodes[0]
	s.fault("sentinel: the master SIGKILLed", 3*time.Second, func() {
		old.Kill()
		peers.Until(t, backBound, "a replica promoted", func() bool { m := g.Master(set); return m != nil && m != old })
		old.Start(t)
	})
	if n := s.badReplays.Load(); n != 0 {
		t.Fatalf("%d replays accepted", n)
	}
	s.checkLogs()
}

// TestRedisClusterFaults: a Cluster of three masters and three replicas
// under two daemons with redis_min_replicas = 1, through three faults in
// turn: a master SIGKILLed (its replica promoted, then the old master
// restarted, which follows it); the master that serves the key older
// versions kept their one marker under restarted empty (a crash without
// persistence, under a supervisor that restarts it at once: it keeps its
// slots, and its replica resyncs from it, empty); another master restarted
// empty. No replay is accepted; logins are back within the bound after
// each; a loss is noticed after each restart empty.
func TestRedisClusterFaults(t *testing.T) {
	t.Parallel()
	set := peers.Get(t)
	fixture.RequirePeer(t, set.RedisServer, set.RedisCLI)
	c := set.StartRedisCluster(t, 3, 1, 3*time.Second)
	fixture.MarkRedisCluster(t, c.Addrs(), "tokenauthd:")
	s := startHASite(t, fmt.Sprintf("[replay]\nstore = \"redis\"\nredis_addrs = [%s]\nredis_min_replicas = 1\n", quoteAll(c.Addrs())))

	victim := c.Node(c.Masters(t)[0])
	s.fault("cluster: a master SIGKILLed", 3*time.Second, func() {
		victim.Kill()
		peers.Until(t, backBound, "its replica promoted", func() bool {
			m := c.Masters(t)
			return len(m) == 3 && !slices.Contains(m, victim.Addr())
		})
		// The promoted replica has no replica of its own: the daemons say
		// so (then the old master comes back, as a supervisor restarts it,
		// and follows it).
		peers.Until(t, backBound, "a daemon saying a shard is short of replicas", func() bool {
			return s.count("fewer replicas online than redis_min_replicas") > 0
		})
		victim.Start(t)
	})
	peers.Until(t, backBound, "a daemon saying the shard has its replicas again", func() bool {
		return s.count("has its replicas again") > 0
	})
	c.WaitHealthy(t, 1, backBound)

	markerMaster := c.MasterOf(t, "tokenauthd:epoch")
	restartEmpty := func(addr string) func() {
		return func() {
			n := c.Node(addr)
			n.Kill()
			n.Wipe(t)
			n.Start(t)
		}
	}
	losses := s.count("may have lost records")
	s.fault("cluster: the marker's master restarted empty", 3*time.Second, restartEmpty(markerMaster))
	if s.count("may have lost records") == losses {
		t.Error("the marker's master restarted empty: no daemon noticed the loss")
	}
	c.WaitHealthy(t, 1, backBound)

	var other string
	for _, m := range c.Masters(t) {
		if m != markerMaster {
			other = m
		}
	}
	losses = s.count("may have lost records")
	s.fault("cluster: another master restarted empty", 3*time.Second, restartEmpty(other))
	if s.count("may have lost records") == losses {
		t.Error("another master restarted empty: no daemon noticed the loss")
	}
	s.checkLogs()
	if n := s.badReplays.Load(); n != 0 {
		t.Fatalf("%d replays accepted", n)
	}
}

func quoteAll(addrs []string) string {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(q, ", ")
}
