package daemon

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// scrapeValue returns the value of the metric with the name and labels
// (a subset), from the registry; -1 if absent.
func scrapeValue(t *testing.T, m *metrics, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			if !hasLabels(mt, labels) {
				continue
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue()
			case mt.Gauge != nil:
				return mt.Gauge.GetValue()
			case mt.Histogram != nil:
				return float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// TestMetricsCount: requests are counted by command, result and reason,
// timed, store errors counted, reloads counted, and build info exported.
func TestMetricsCount(t *testing.T) {
	store := replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: time.Minute})
	v, err := verifier.New(verifier.Config{Params: verifier.DefaultParams(), Store: store,
		Hosts: map[string]verifier.Host{"a.example": {TokenSecrets: [][]byte{[]byte(fixture.SecretA)}, OTPSeeds: []string{fixture.SeedA}, IsUser: true}}})
	if err != nil {
		t.Fatal(err)
	}
	h := newAuthHandler(v, discard, logs.NewRateLog(discard, nil), newMetrics(store), nil)
	ctx := context.Background()
	tok := fixture.Mint(t, fixture.SecretA, fixture.SeedA, "alice", "a.example")
	auth := func(tok string) {
		h.Answer(ctx, protocol.Request{Command: "auth", User: "alice", Server: "a.example", Password: tok})
	}
	auth(tok)
	auth(tok)
	auth(tok)
	auth("nope")
	h.Answer(ctx, protocol.Request{Command: "isuser", User: "alice", Server: "a.example"})
	h.Answer(ctx, protocol.Request{Command: "setpass", User: "alice", Server: "a.example", Password: "x"})
	h.badRequest(protocol.Generic, io.ErrUnexpectedEOF)
	h.metrics.reload(true)
	h.metrics.reload(false)
	h.metrics.reload(false)

	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tokenauthd_requests_total", map[string]string{"command": "auth", "result": "yes", "reason": "accepted"}, 1},
		{"tokenauthd_requests_total", map[string]string{"command": "auth", "result": "no", "reason": "replayed"}, 2},
		{"tokenauthd_requests_total", map[string]string{"command": "auth", "result": "no", "reason": "malformed"}, 1},
		{"tokenauthd_requests_total", map[string]string{"command": "isuser", "result": "yes"}, 1},
		{"tokenauthd_requests_total", map[string]string{"command": "setpass", "result": "no", "reason": "unsupported_command"}, 1},
		{"tokenauthd_requests_total", map[string]string{"command": "invalid", "result": "no", "reason": "bad_request"}, 1},
		{"tokenauthd_request_duration_seconds", map[string]string{"command": "auth"}, 4},
		{"tokenauthd_replay_store_records", nil, 1},
		{"tokenauthd_replay_store_errors_total", nil, 0},
		{"tokenauthd_config_reloads_total", map[string]string{"result": "ok"}, 1},
		{"tokenauthd_config_reloads_total", map[string]string{"result": "failed"}, 2},
		{"tokenauthd_build_info", map[string]string{"version": cli.Version()}, 1},
		{"tokenauthd_replay_live_evictions_total", nil, 0},
		// Requests refused before reaching the handler are not timed.
		{"tokenauthd_request_duration_seconds", map[string]string{"command": "invalid"}, -1},
	} {
		if got := scrapeValue(t, h.metrics, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// downStore is a replay store that cannot answer.
type downStore struct{ replay.Store }

func (downStore) Record(context.Context, replay.Key) (bool, error) {
	return false, replay.ErrUnavailable
}
func (downStore) Len() int               { return -1 }
func (downStore) ForgottenAt() time.Time { return time.Time{} }

// TestMetricsStoreErrors: a store that does not answer is counted as a
// store error and as a store_unavailable refusal.
func TestMetricsStoreErrors(t *testing.T) {
	store := downStore{}
	v, err := verifier.New(verifier.Config{Params: verifier.DefaultParams(), Store: store,
		Hosts: map[string]verifier.Host{"a.example": {TokenSecrets: [][]byte{[]byte(fixture.SecretA)}, OTPSeeds: []string{fixture.SeedA}}}})
	if err != nil {
		t.Fatal(err)
	}
	h := newAuthHandler(v, discard, logs.NewRateLog(discard, nil), newMetrics(store), nil)
	if h.Answer(context.Background(), protocol.Request{Command: "auth", User: "alice", Server: "a.example",
		Password: fixture.Mint(t, fixture.SecretA, fixture.SeedA, "alice", "a.example")}) {
		t.Fatal("accepted with the store down")
	}
	if got := scrapeValue(t, h.metrics, "tokenauthd_replay_store_errors_total", nil); got != 1 {
		t.Errorf("store errors %v, want 1", got)
	}
	if got := scrapeValue(t, h.metrics, "tokenauthd_requests_total", map[string]string{"command": "auth", "reason": "store_unavailable", "result": "no"}); got != 1 {
		t.Errorf("store_unavailable refusals %v, want 1", got)
	}
	if got := scrapeValue(t, h.metrics, "tokenauthd_replay_store_records", nil); got != -1 {
		t.Errorf("records %v, want -1", got)
	}
	if got := scrapeValue(t, h.metrics, "tokenauthd_replay_live_evictions_total", nil); got != -1 {
		t.Errorf("live evictions exported for a store that has none: %v", got)
	}
}

// seriesOf returns the series of the named metrics in m, as
// name{label=value,...}.
func seriesOf(t *testing.T, m *metrics, names ...string) []string {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		if !slices.Contains(names, f.GetName()) {
			continue
		}
		for _, mt := range f.GetMetric() {
			var ls []string
			for _, l := range mt.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			out = append(out, f.GetName()+"{"+strings.Join(ls, ",")+"}")
		}
	}
	return out
}

// Every series of the labelled request metrics exists, at 0, before its
// first event, and so do the connection metrics.
func TestMetricsSeriesFromStart(t *testing.T) {
	m := newMetrics(replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: time.Minute}))
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"tokenauthd_requests_total", map[string]string{"command": "auth", "result": "yes", "reason": "accepted"}},
		{"tokenauthd_requests_total", map[string]string{"command": "auth", "result": "no", "reason": "replayed"}},
		{"tokenauthd_requests_total", map[string]string{"command": "auth", "result": "no", "reason": "store_unavailable"}},
		{"tokenauthd_requests_total", map[string]string{"command": "seen", "result": "yes", "reason": "replayed"}},
		{"tokenauthd_requests_total", map[string]string{"command": "unused", "result": "no", "reason": "bad_signature"}},
		{"tokenauthd_requests_total", map[string]string{"command": "isuser", "result": "no", "reason": "no_such_user"}},
		{"tokenauthd_requests_total", map[string]string{"command": "certauth", "result": "no", "reason": "unsupported_command"}},
		{"tokenauthd_requests_total", map[string]string{"command": "invalid", "result": "no", "reason": "bad_request"}},
		{"tokenauthd_request_duration_seconds", map[string]string{"command": "auth"}},
		{"tokenauthd_request_duration_seconds", map[string]string{"command": "removeuser3"}},
		{"tokenauthd_connections", nil},
		{"tokenauthd_connections_refused_total", nil},
		{"tokenauthd_request_timeouts_total", nil},
	} {
		if got := scrapeValue(t, m, c.name, c.labels); got != 0 {
			t.Errorf("%s%v = %v at start, want 0", c.name, c.labels, got)
		}
	}
}

// The series exported from the start are all a request can be counted
// under: answering every command with every outcome adds none.
func TestMetricsSeriesComplete(t *testing.T) {
	store := replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: time.Minute})
	hosts := map[string]verifier.Host{
		"a.example": {TokenSecrets: [][]byte{[]byte(fixture.SecretA)}, OTPSeeds: []string{fixture.SeedA}, IsUser: true},
		"b.example": {TokenSecrets: [][]byte{[]byte(fixture.SecretB)}, OTPSeeds: []string{fixture.SeedB}},
	}
	m := newMetrics(store)
	start := seriesOf(t, m, "tokenauthd_requests_total", "tokenauthd_request_duration_seconds")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var handlers []*authHandler
	// A store that has just lost its records: store_forgot.
	forgetful := replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: time.Minute})
	forgetful.MarkForgotten(time.Now())
	for _, s := range []replay.Store{store, unreachableStore{}, forgetful} {
		v, err := verifier.New(verifier.Config{Params: verifier.DefaultParams(), Store: s, Hosts: hosts})
		if err != nil {
			t.Fatal(err)
		}
		h := newAuthHandler(v, logger, logs.NewRateLog(logger, nil), m, nil)
		handlers = append(handlers, h)
	}
	ctx := context.Background()
	for _, h := range handlers {
		for _, cmd := range protocol.Commands() {
			tok := fixture.Mint(t, fixture.SecretA, fixture.SeedA, "alice", "a.example")
			for _, r := range []protocol.Request{
				{User: "alice", Server: "a.example", Password: tok},    // fresh
				{User: "alice", Server: "a.example", Password: tok},    // again
				{User: "alice", Server: "a.example", Password: "nope"}, // malformed
				{User: "alice", Server: "c.example", Password: tok},    // unknown host
				{User: "bob", Server: "a.example", Password: tok},      // another user's
				{User: "bob", Server: "b.example", Password: fixture.MintAt(t, fixture.SecretB, fixture.SeedB, "bob", "b.example", time.Unix(1e9, 0))}, // expired
				{User: "bob", Server: "b.example"}, // isuser = false
			} {
				r.Command = cmd
				h.Answer(ctx, r)
			}
		}
		h.badRequest(protocol.Ejabberd, protocol.ErrTooLarge)
	}
	if added, _ := diff(seriesOf(t, m, "tokenauthd_requests_total", "tokenauthd_request_duration_seconds"), start); len(added) > 0 {
		t.Errorf("series that did not exist from the start: %v", added)
	}
	// Every token reason was met, so the test is no rubber stamp (the JWT
	// reasons' series come from the same list: TestMetricsVerifierReasons).
	for _, r := range []verifier.Reason{verifier.Accepted, verifier.Malformed, verifier.UnknownHost, verifier.OTPOutOfWindow,
		verifier.BadSignature, verifier.Replayed, verifier.StoreUnavailable, verifier.StoreForgot} {
		if scrapeValue(t, m, "tokenauthd_requests_total", map[string]string{"command": "auth", "reason": string(r)}) <= 0 {
			t.Errorf("no auth request gave %s", r)
		}
	}
}

// unreachableStore is a replay store none of whose calls is answered.
type unreachableStore struct{}

func (unreachableStore) Record(context.Context, replay.Key) (bool, error) {
	return false, replay.ErrUnavailable
}
func (unreachableStore) Seen(context.Context, replay.Key) (bool, error) {
	return false, replay.ErrUnavailable
}
func (unreachableStore) Len() int     { return -1 }
func (unreachableStore) Close() error { return nil }

func (unreachableStore) ForgottenAt() time.Time { return time.Time{} }

// diff returns what a has and b has not, and the converse.
func diff(a, b []string) (onlyA, onlyB []string) {
	for _, x := range a {
		if !slices.Contains(b, x) {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

// TestMetricsVerifierReasons: every reason the verifier can give (tokens'
// and JWTs', verifier.Reasons, which verifier's TestReasons holds to its
// constants) has its auth series from the start, at 0.
func TestMetricsVerifierReasons(t *testing.T) {
	m := newMetrics(replay.NewMemory(replay.MemoryOptions{Capacity: 10, TTL: time.Minute}))
	for _, r := range verifier.Reasons() {
		result := "no"
		if r == verifier.Accepted {
			result = "yes"
		}
		if v := scrapeValue(t, m, "tokenauthd_requests_total", map[string]string{"command": "auth", "result": result, "reason": string(r)}); v != 0 {
			t.Errorf("auth %s: %v at start, want a series at 0", r, v)
		}
	}
}

// discard is a logger that writes nowhere.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))
