package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// serveBench serves h on a loopback listener until the benchmark ends and
// returns its address.
func serveBench(b *testing.B, h http.Handler) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: ReadHeaderTimeout}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// BenchmarkTokensVsFloor measures POST /v1/tokens through the API's real
// listener (Start: the connection limit, the timeouts) on one kept-alive
// connection, against the floor: a do-nothing net/http handler answering
// the same request on its own kept-alive connection. The two alternate,
// one request each per op, so that a shared machine's load falls on both
// alike. It reports each one's p50 and p99, their p50 ratio (the goal:
// at most 1.5) and the tokens minted per second of the API's time.
func BenchmarkTokensVsFloor(b *testing.B) {
	v, err := verifier.NewOffline(verifier.Config{
		Params: verifier.DefaultParams(),
		Hosts:  map[string]verifier.Host{fixture.Host: {TokenSecrets: [][]byte{[]byte(fixture.Secret)}, OTPSeeds: []string{fixture.Seed}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	cfg := &config.HTTP{Listen: "127.0.0.1:0", PerUserPerMinute: maxPerUserBench,
		Apps: map[string]config.HTTPApp{"bench": {Key: []byte(keyA), Hosts: []string{fixture.Host}}}}
	s, err := New(cfg, Options{Minter: func() Minter { return v }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := s.Start(ctx, l)
	defer func() { cancel(); stop() }()
	floor := serveBench(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	}))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	post := func(addr string, i int) time.Duration {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/tokens", strings.NewReader(fmt.Sprintf(`{"jid":"user%d@%s"}`, i%1000, fixture.Host)))
		req.Header.Set("Authorization", "Bearer "+keyA)
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		took := time.Since(start)
		if res.StatusCode != 200 {
			b.Fatalf("%s: %s", addr, res.Status)
		}
		return took
	}
	api := l.Addr().String()
	post(api, 0) // connections opened before timing
	post(floor, 0)
	floorT, apiT := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		floorT = append(floorT, post(floor, i))
		apiT = append(apiT, post(api, i))
	}
	b.StopTimer()
	slices.Sort(floorT)
	slices.Sort(apiT)
	var total time.Duration
	for _, d := range apiT {
		total += d
	}
	q := func(s []time.Duration, f float64) float64 { return float64(s[int(f*float64(len(s)-1))].Microseconds()) }
	b.ReportMetric(q(floorT, .5), "floor-p50-µs")
	b.ReportMetric(q(floorT, .99), "floor-p99-µs")
	b.ReportMetric(q(apiT, .5), "tokens-p50-µs")
	b.ReportMetric(q(apiT, .99), "tokens-p99-µs")
	b.ReportMetric(float64(q(apiT, .5))/max(q(floorT, .5), 1), "p50-ratio")
	b.ReportMetric(float64(len(apiT))/total.Seconds(), "tokens/s")
}

// maxPerUserBench lets the benchmark's 1,000 users mint as fast as they can.
const maxPerUserBench = 1 << 30
