package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestIdleConnectionsGiveWay: when every connection the API admits is
// taken by clients idle between requests (kept alive), a new client is
// served at once, the longest idle giving way, rather than after the idle
// timeout: idle keep-alive connections cannot hold the API.
func TestIdleConnectionsGiveWay(t *testing.T) {
	e := newEnv(t, testConfig())
	e.s.maxConns = 2
	addr := e.serve()
	get := func(c *http.Client) error {
		res, err := c.Get("http://" + addr + "/nothing-here")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		return res.Body.Close()
	}
	// Two clients, each with its connection kept alive and idle.
	for range 2 {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		defer c.CloseIdleConnections()
		if err := get(c); err != nil {
			t.Fatal(err)
		}
	}
	// A third is served: the bound on the test (far below IdleTimeout)
	// only keeps a failure from hanging.
	c := &http.Client{Transport: &http.Transport{}, Timeout: IdleTimeout / 4}
	defer c.CloseIdleConnections()
	if err := get(c); err != nil {
		t.Fatalf("a new client while idle connections fill every slot: %v", err)
	}
}

// TestRefusalLoggedOnce: a refusal's line names its reason once (the rate
// limit's key, the endpoint's name and the reason), not twice.
func TestRefusalLoggedOnce(t *testing.T) {
	e := newEnv(t, testConfig())
	addr := e.serve()
	res, err := http.Get("http://" + addr + "/v1/tokens")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for line := range strings.SplitSeq(strings.TrimSpace(e.log.String()), "\n") {
		if n := strings.Count(line, "reason="); strings.Contains(line, "http: refused") && n != 1 {
			t.Errorf("%d reason= in %q, want 1", n, line)
		}
	}
}

// serve starts the env's API on a listener of its own and returns its
// address; the API stops when the test ends.
func (e *env) serve() string {
	e.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := e.s.Start(ctx, l)
	e.t.Cleanup(func() { cancel(); stop() })
	return l.Addr().String()
}
