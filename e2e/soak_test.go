package e2e

// The soak: the real daemon under 64 connections of mixed traffic for a
// long time. Not in the default suite (it runs for 10 minutes): run it with
//
//	TOKENAUTHD_SOAK=10m go test -run TestSoak -v -timeout 30m .
//
// It listens on a Unix socket in a temporary directory and serves metrics
// on a free loopback port only. The clients send at a fixed total rate
// (TOKENAUTHD_SOAK_RATE requests a second, 2000 by default), so that the
// replay store's steady size, hence the daemon's memory, does not depend on
// how busy the machine is: after one record lifetime it must stay flat.
//
// TOKENAUTHD_SOAK_STORE picks the replay store: "memory" (the default),
// "journal" (memory with a journal in the temporary directory, created
// beforehand so that the start is not a first start) or "redis" (a
// redis-server on a free loopback port, marked as a daemon that ran
// before would have left it). Either way the start refuses nothing.

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// soakCounts are the clients' tallies, shared by all connections.
type soakCounts struct {
	valid, accepted    atomic.Int64 // fresh valid tokens sent, accepted
	replays, refused   atomic.Int64 // replays sent, refused
	bad, badAccepted   atomic.Int64 // bad requests sent, accepted
	requests, failures atomic.Int64 // all requests; broken connections or replies
}

// soakSample is one 30-second sample of the daemon.
type soakSample struct {
	at         time.Duration
	rssKB      int64
	heap       float64
	goroutines float64
	records    float64
	requests   int64
}

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a soak")
	}
	dur, err := time.ParseDuration(os.Getenv("TOKENAUTHD_SOAK"))
	if err != nil || dur <= 0 {
		t.Skip("set TOKENAUTHD_SOAK to a duration (e.g. 10m) to run the soak")
	}
	const conns = 64
	rate := 2000
	if r, err := strconv.Atoi(os.Getenv("TOKENAUTHD_SOAK_RATE")); err == nil && r > 0 {
		rate = r
	}
	every := time.Duration(conns) * time.Second / time.Duration(rate) // per connection
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	port := fixture.FreePort(t)
	store, storeSize := soakStore(t, dir)
	path := filepath.Join(dir, "config.toml")
	fixture.WriteFile(t, path, fmt.Sprintf("[daemon]\nsocket = %q\n[metrics]\nlisten = \"127.0.0.1:%d\"\n", sock, port)+
		store+fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil))
	p := startServe(t, path, sock)
	p.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)

	// The application: mints fresh tokens with the host's secret.
	app := fixture.Verifier(t, fixture.SecretA, fixture.SeedA, "a.example")

	var n soakCounts
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			soakConn(t, sock, i, deadline, every, app, &n)
		}()
	}
	samples := soakSamples(t, p, deadline, &n, storeSize)
	wg.Wait()
	soakCheck(t, p, samples, &n, conns)
	if code := p.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d", code)
	}
}

// soakStore prepares the replay store TOKENAUTHD_SOAK_STORE names, as a
// daemon that ran before would have left it, and returns its [replay]
// section and a description of the store's own size for the samples.
func soakStore(t *testing.T, dir string) (section string, size func() string) {
	switch s := os.Getenv("TOKENAUTHD_SOAK_STORE"); s {
	case "", "memory":
		return "", func() string { return "" }
	case "journal":
		jpath := filepath.Join(dir, "replay.journal")
		fixture.MakeJournal(t, jpath)
		return fmt.Sprintf("[replay]\njournal = %q\n", jpath), func() string {
			var kb [2]int64
			for i, f := range []string{jpath, jpath + ".old"} {
				if fi, err := os.Stat(f); err == nil {
					kb[i] = fi.Size() / 1024
				}
			}
			return fmt.Sprintf(", journal %d KiB + old %d KiB", kb[0], kb[1])
		}
	case "redis":
		rs := fixture.StartRedis(t, 0)
		fixture.MarkRedis(t, rs.Port, "tokenauthd:")
		c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.Port)})
		t.Cleanup(func() { c.Close() })
		return fmt.Sprintf("[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:%d/0\"\n", rs.Port), func() string {
			ctx := context.Background()
			keys, _ := c.DBSize(ctx).Result()
			used, _ := c.InfoMap(ctx, "memory").Result()
			return fmt.Sprintf(", redis keys %d, used_memory %s B, redis rss %d KiB",
				keys, used["Memory"]["used_memory"], rssKB(t, rs.PID()))
		}
	default:
		t.Fatalf("TOKENAUTHD_SOAK_STORE=%q: want memory, journal or redis", s)
		return "", nil
	}
}

// soakSamples samples the daemon every 30 s until deadline: RSS from /proc,
// heap, goroutines and store records from its metrics, and the store's own
// size.
func soakSamples(t *testing.T, p *serveProc, deadline time.Time, n *soakCounts, storeSize func() string) []soakSample {
	var samples []soakSample
	start := time.Now()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		<-tick.C
		m := scrape(t, p.metrics)
		s := soakSample{at: time.Since(start).Round(time.Second), rssKB: rssKB(t, p.cmd.Process.Pid), heap: m["go_memstats_heap_inuse_bytes"],
			goroutines: m["go_goroutines"], records: m["tokenauthd_replay_store_records"], requests: n.requests.Load()}
		samples = append(samples, s)
		t.Logf("soak %v: rss %d KiB, heap in use %.0f KiB, goroutines %v, store records %v, requests %d%s",
			s.at, s.rssKB, s.heap/1024, s.goroutines, s.records, s.requests, storeSize())
	}
	return samples
}

// soakCheck checks the run: every valid token accepted exactly once, every
// replay and bad request refused, no broken connection, and RSS and
// goroutines flat, back to idle once the clients have gone.
func soakCheck(t *testing.T, p *serveProc, samples []soakSample, n *soakCounts, conns int) {
	if len(samples) == 0 {
		t.Fatal("no sample: run the soak for at least 30 s")
	}
	// The clients have closed their connections: wait for the daemon to
	// see them go (an ordering wait; a leak keeps the count up and fails
	// below).
	var m map[string]float64
	idleWant := samples[0].goroutines - float64(conns) + 5
	for wait := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if m = scrape(t, p.metrics); m["go_goroutines"] <= idleWant || time.Now().After(wait) {
			break
		}
	}
	idle := m["go_goroutines"]
	t.Logf("soak done: %d requests; %d valid tokens, %d accepted; %d replays, %d refused; %d bad, %d accepted; goroutines after the clients left: %v; live evictions %v; failures %d",
		n.requests.Load(), n.valid.Load(), n.accepted.Load(), n.replays.Load(), n.refused.Load(), n.bad.Load(), n.badAccepted.Load(), idle,
		m["tokenauthd_replay_live_evictions_total"], n.failures.Load())

	if n.failures.Load() != 0 {
		t.Errorf("%d connection failures", n.failures.Load())
	}
	if n.valid.Load() == 0 || n.accepted.Load() != n.valid.Load() {
		t.Errorf("valid tokens %d, accepted %d: every valid token must be accepted exactly once", n.valid.Load(), n.accepted.Load())
	}
	if n.refused.Load() != n.replays.Load() || n.badAccepted.Load() != 0 {
		t.Errorf("replays %d refused %d; bad requests accepted %d", n.replays.Load(), n.refused.Load(), n.badAccepted.Load())
	}
	if got := m[`tokenauthd_requests_total{command="auth",reason="accepted",result="yes"}`]; int64(got) != n.valid.Load() {
		t.Errorf("daemon counted %v accepted, clients %d", got, n.valid.Load())
	}
	// Flat: after the warm-up (the store fills for one TTL, 120 s), RSS and
	// goroutines do not grow; once the clients have gone, the goroutines are
	// back to the idle count.
	// Compare the peaks of the middle third and of the last third of the
	// run (the first third includes the store's filling).
	if k := len(samples); k >= 6 {
		peak := func(ss []soakSample) (rss int64, g float64) {
			for _, s := range ss {
				rss, g = max(rss, s.rssKB), max(g, s.goroutines)
			}
			return rss, g
		}
		midRSS, midG := peak(samples[k/3 : 2*k/3])
		lastRSS, lastG := peak(samples[2*k/3:])
		t.Logf("peak RSS: middle third %d KiB, last third %d KiB; peak goroutines %v, %v", midRSS, lastRSS, midG, lastG)
		if lastRSS > midRSS*12/10 {
			t.Errorf("RSS grew: peak %d KiB in the middle third, %d KiB in the last", midRSS, lastRSS)
		}
		if lastG > midG+5 {
			t.Errorf("goroutines grew from %v to %v", midG, lastG)
		}
	}
	if idle > idleWant {
		t.Errorf("goroutines after the clients left: %v (with %d clients: %v)", idle, conns, samples[0].goroutines)
	}
}

// soakConn is one client: a generic or ejabberd connection sending a mix of
// fresh valid tokens, replays of its own accepted tokens, malformed tokens,
// forged signatures, garbage and oversized requests; it reconnects now and
// then.
func soakConn(t *testing.T, sock string, id int, deadline time.Time, every time.Duration, app *verifier.Offline, n *soakCounts) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	cl := &soakClient{sock: sock, ejabberd: id%2 == 1}
	dial := func() bool {
		if err := cl.dial(); err != nil {
			n.failures.Add(1)
			t.Logf("conn %d: dial: %v", id, err)
			return false
		}
		return true
	}
	if !dial() {
		return
	}
	defer func() { cl.c.Close() }()
	var used []string // accepted tokens, for replays
	seq := 0
	pace := time.NewTicker(every)
	defer pace.Stop()
	for time.Now().Before(deadline) {
		<-pace.C
		seq++
		if seq%2000 == 0 && !dial() { // churn
			return
		}
		kind := rng.IntN(10)
		if seq == 1 || seq%2000 == 0 {
			// A connection's first request is a token: the daemon takes
			// a stream that does not start with a command's name for
			// ejabberd frames, as protocol.Detect says.
			kind = 0
		}
		user := fmt.Sprintf("u%d-%d", id, seq)
		n.requests.Add(1)
		switch {
		case kind < 4: // fresh valid token
			tok, err := app.Mint(user, "a.example", time.Now(), "")
			if err != nil {
				t.Error(err)
				return
			}
			ok, sane := cl.ask([]byte("auth:" + user + ":a.example:" + tok))
			if !sane {
				n.failures.Add(1)
				return
			}
			n.valid.Add(1)
			if ok {
				n.accepted.Add(1)
				used = append(used, user+":a.example:"+tok)
				if len(used) > 64 {
					used = used[len(used)-64:]
				}
			}
		case kind < 6 && len(used) > 0: // replay
			ok, sane := cl.ask([]byte("auth:" + used[rng.IntN(len(used))]))
			if !sane {
				n.failures.Add(1)
				return
			}
			n.replays.Add(1)
			if !ok {
				n.refused.Add(1)
			}
		default:
			ok, sane := cl.ask(soakBad(rng, app, user, cl.ejabberd, kind))
			if !sane {
				n.failures.Add(1)
				t.Logf("conn %d: reply out of sync after a bad request", id)
				return
			}
			n.bad.Add(1)
			if ok {
				n.badAccepted.Add(1)
			}
		}
	}
}

// soakBad returns a bad request of kind (0-9; below 7, a replay without a
// token to replay): a malformed token or a forged signature, random bytes
// (one request: no newline) or an oversized request.
func soakBad(rng *rand.Rand, app *verifier.Offline, user string, ejabberd bool, kind int) []byte {
	switch {
	case kind < 7: // malformed token or forged signature
		tok, _ := app.Mint(user, "a.example", time.Now(), "")
		if rng.IntN(2) == 0 {
			tok = tok[:len(tok)-6] + "AAAAA=" // forged signature
		} else {
			tok = strings.Replace(tok, " ", "x", 1)
		}
		return []byte("auth:" + user + ":a.example:" + tok)
	case kind < 9: // garbage
		body := make([]byte, 1+rng.IntN(300))
		for i := range body {
			b := byte(rng.IntN(256))
			if b == '\n' {
				b = ' '
			}
			body[i] = b
		}
		if !ejabberd {
			body[0] = 'a' + byte(rng.IntN(26)) // stays one generic line
			if body[len(body)-1] == '\r' {
				body[len(body)-1] = ' ' // which a reader would not trim
			}
		}
		return body
	default: // oversized
		size := 5000 + rng.IntN(5000)
		if ejabberd {
			size = 60000
		}
		return []byte("auth:" + user + ":a.example:" + strings.Repeat("7", size))
	}
}

// soakClient is one connection to the daemon, in ejabberd framing or in
// generic lines.
type soakClient struct {
	sock     string
	ejabberd bool
	c        net.Conn
	r        *bufio.Reader
}

// dial (re)connects.
func (cl *soakClient) dial() error {
	if cl.c != nil {
		cl.c.Close()
	}
	c, err := net.Dial("unix", cl.sock)
	if err != nil {
		return err
	}
	cl.c, cl.r = c, bufio.NewReader(c)
	return nil
}

// ask sends one request and reads its reply: yes or no, and whether the
// reply was well formed and arrived.
func (cl *soakClient) ask(body []byte) (yes, sane bool) {
	cl.c.SetDeadline(time.Now().Add(30 * time.Second))
	mode := protocol.Generic
	if cl.ejabberd {
		mode = protocol.Ejabberd
	}
	fr, err := protocol.AppendFrame(nil, mode, body)
	if err != nil {
		return false, false
	}
	if _, err := cl.c.Write(fr); err != nil {
		return false, false
	}
	yes, err = protocol.ReadReply(cl.r, mode)
	return yes, err == nil
}

// rssKB returns the resident set size of process pid, in KiB.
func rssKB(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}
