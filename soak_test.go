package main

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

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

func TestSoak(t *testing.T) {
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
	port := freePort(t)
	path := filepath.Join(dir, "config.toml")
	writeConfig(t, path, fmt.Sprintf("[daemon]\nsocket = %q\n[metrics]\nlisten = \"127.0.0.1:%d\"\n", sock, port)+
		hostBlock("a.example", secretA, seedA, nil, nil))
	p := startServeOps(t, path, sock, port)
	pid := p.cmd.Process.Pid

	// The application: mints fresh tokens with the host's secret.
	app, err := verifier.New(verifier.Config{Params: verifier.DefaultParams(),
		Hosts: map[string]verifier.Host{"a.example": {TokenSecrets: [][]byte{[]byte(secretA)}, OTPSeeds: []string{seedA}}},
		Store: replay.NewMemory(replay.MemoryOptions{Capacity: 1, TTL: time.Second})})
	if err != nil {
		t.Fatal(err)
	}

	var (
		valid, accepted, replays, refusedReplays, bad, badAccepted, requests atomic.Int64
		failures                                                             atomic.Int64
	)
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			soakConn(t, sock, i, deadline, every, app, &valid, &accepted, &replays, &refusedReplays, &bad, &badAccepted, &requests, &failures)
		}()
	}

	type sample struct {
		at         time.Duration
		rssKB      int64
		heap       float64
		goroutines float64
		records    float64
		requests   int64
	}
	samples := []sample{{goroutines: conns + 12}} // replaced by the first real sample
	start := time.Now()
	tick := time.NewTicker(30 * time.Second)
	for time.Now().Before(deadline) {
		<-tick.C
		m := scrape(t, p.metrics)
		s := sample{at: time.Since(start).Round(time.Second), rssKB: rssKB(t, pid), heap: m["go_memstats_heap_inuse_bytes"],
			goroutines: m["go_goroutines"], records: m["tokenauthd_replay_store_records"], requests: requests.Load()}
		if samples[0].at == 0 {
			samples = samples[:0]
		}
		samples = append(samples, s)
		t.Logf("soak %v: rss %d KiB, heap in use %.0f KiB, goroutines %v, store records %v, requests %d",
			s.at, s.rssKB, s.heap/1024, s.goroutines, s.records, s.requests)
	}
	tick.Stop()
	wg.Wait()
	// The clients have closed their connections: wait for the daemon to
	// see them go (an ordering wait; a leak keeps the count up and fails
	// below).
	var m map[string]float64
	idleWant := samples[0].goroutines - conns + 5
	for wait := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if m = scrape(t, p.metrics); m["go_goroutines"] <= idleWant || time.Now().After(wait) {
			break
		}
	}
	idle := m["go_goroutines"]
	t.Logf("soak done: %d requests; %d valid tokens, %d accepted; %d replays, %d refused; %d bad, %d accepted; goroutines after the clients left: %v; live evictions %v; failures %d",
		requests.Load(), valid.Load(), accepted.Load(), replays.Load(), refusedReplays.Load(), bad.Load(), badAccepted.Load(), idle,
		m["tokenauthd_replay_live_evictions_total"], failures.Load())

	if failures.Load() != 0 {
		t.Errorf("%d connection failures", failures.Load())
	}
	if valid.Load() == 0 || accepted.Load() != valid.Load() {
		t.Errorf("valid tokens %d, accepted %d: every valid token must be accepted exactly once", valid.Load(), accepted.Load())
	}
	if refusedReplays.Load() != replays.Load() || badAccepted.Load() != 0 {
		t.Errorf("replays %d refused %d; bad requests accepted %d", replays.Load(), refusedReplays.Load(), badAccepted.Load())
	}
	if got := m[`tokenauthd_requests_total{command="auth",reason="accepted",result="yes"}`]; int64(got) != valid.Load() {
		t.Errorf("daemon counted %v accepted, clients %d", got, valid.Load())
	}
	// Flat: after the warm-up (the store fills for one TTL, 120 s), RSS and
	// goroutines do not grow; once the clients have gone, the goroutines are
	// back to the idle count.
	// Compare the peaks of the middle third and of the last third of the
	// run (the first third includes the store's filling).
	if n := len(samples); n >= 6 {
		peak := func(ss []sample) (rss int64, g float64) {
			for _, s := range ss {
				rss, g = max(rss, s.rssKB), max(g, s.goroutines)
			}
			return rss, g
		}
		midRSS, midG := peak(samples[n/3 : 2*n/3])
		lastRSS, lastG := peak(samples[2*n/3:])
		t.Logf("peak RSS: middle third %d KiB, last third %d KiB; peak goroutines %v, %v", midRSS, lastRSS, midG, lastG)
		if lastRSS > midRSS*12/10 {
			t.Errorf("RSS grew: peak %d KiB in the middle third, %d KiB in the last", midRSS, lastRSS)
		}
		if lastG > midG+5 {
			t.Errorf("goroutines grew from %v to %v", midG, lastG)
		}
	}
	if idle > idleWant {
		t.Errorf("goroutines after the clients left: %v (with 64 clients: %v)", idle, samples[0].goroutines)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit status %d", code)
	}
}

// soakConn is one client: a generic or ejabberd connection sending a mix of
// fresh valid tokens, replays of its own accepted tokens, malformed tokens,
// forged signatures, garbage and oversized requests; it reconnects now and
// then.
func soakConn(t *testing.T, sock string, id int, deadline time.Time, every time.Duration, app *verifier.Verifier,
	valid, accepted, replays, refusedReplays, bad, badAccepted, requests, failures *atomic.Int64) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	ejabberd := id%2 == 1
	var c net.Conn
	var r *bufio.Reader
	dial := func() bool {
		if c != nil {
			c.Close()
		}
		var err error
		if c, err = net.Dial("unix", sock); err != nil {
			failures.Add(1)
			t.Logf("conn %d: dial: %v", id, err)
			return false
		}
		r = bufio.NewReader(c)
		return true
	}
	if !dial() {
		return
	}
	defer func() { c.Close() }()
	ask := func(body []byte) (bool, bool) {
		requests.Add(1)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if ejabberd {
			fr := append([]byte{byte(len(body) >> 8), byte(len(body))}, body...)
			if _, err := c.Write(fr); err != nil {
				return false, false
			}
			var rep [4]byte
			if _, err := io.ReadFull(r, rep[:]); err != nil || rep[0] != 0 || rep[1] != 2 || rep[2] != 0 || rep[3] > 1 {
				return false, false
			}
			return rep[3] == 1, true
		}
		if _, err := c.Write(append(body, '\n')); err != nil {
			return false, false
		}
		line, err := r.ReadString('\n')
		if err != nil || (line != "1\n" && line != "0\n") {
			return false, false
		}
		return line == "1\n", true
	}
	var used []string // accepted tokens, for replays
	n := 0
	pace := time.NewTicker(every)
	defer pace.Stop()
	for time.Now().Before(deadline) {
		<-pace.C
		n++
		if n%2000 == 0 && !dial() { // churn
			return
		}
		var body []byte
		kind := rng.IntN(10)
		user := fmt.Sprintf("u%d-%d", id, n)
		switch {
		case kind < 4: // fresh valid token
			tok, err := app.Mint(user, "a.example", time.Now(), "")
			if err != nil {
				t.Error(err)
				return
			}
			ok, sane := ask([]byte("auth:" + user + ":a.example:" + tok))
			if !sane {
				failures.Add(1)
				return
			}
			valid.Add(1)
			if ok {
				accepted.Add(1)
				used = append(used, user+":a.example:"+tok)
				if len(used) > 64 {
					used = used[len(used)-64:]
				}
			}
			continue
		case kind < 6 && len(used) > 0: // replay
			ok, sane := ask([]byte("auth:" + used[rng.IntN(len(used))]))
			if !sane {
				failures.Add(1)
				return
			}
			replays.Add(1)
			if !ok {
				refusedReplays.Add(1)
			}
			continue
		case kind < 7: // malformed token or forged signature
			tok, _ := app.Mint(user, "a.example", time.Now(), "")
			if rng.IntN(2) == 0 {
				tok = tok[:len(tok)-6] + "AAAAA=" // forged signature
			} else {
				tok = strings.Replace(tok, " ", "x", 1)
			}
			body = []byte("auth:" + user + ":a.example:" + tok)
		case kind < 9: // garbage: random bytes, one request (no newline)
			body = make([]byte, 1+rng.IntN(300))
			for i := range body {
				b := byte(rng.IntN(256))
				if b == '\n' {
					b = ' '
				}
				body[i] = b
			}
			if !ejabberd {
				body[0] = 'a' + byte(rng.IntN(26)) // stays one generic line
			}
		default: // oversized
			size := 5000 + rng.IntN(5000)
			if ejabberd {
				size = 60000
			}
			body = []byte("auth:" + user + ":a.example:" + strings.Repeat("7", size))
		}
		ok, sane := ask(body)
		if !sane {
			failures.Add(1)
			t.Logf("conn %d: reply out of sync after a bad request", id)
			return
		}
		bad.Add(1)
		if ok {
			badAccepted.Add(1)
		}
	}
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
