package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
)

// TestIdleConnectionsGiveWay: when every connection the API admits is
// taken by clients idle between requests (kept alive), a new client is
// served at once, the longest idle giving way, rather than after the idle
// timeout: idle keep-alive connections cannot hold the API.
func TestIdleConnectionsGiveWay(t *testing.T) {
	e := newEnv(t, testConfig())
	e.s.maxConns = 2
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := e.s.Start(ctx, l)
	defer stop()
	get := func(c *http.Client) error {
		res, err := c.Get("http://" + l.Addr().String() + "/nothing-here")
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
