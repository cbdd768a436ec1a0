package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

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
		Hosts: map[string]verifier.Host{"a.example": {TokenSecrets: [][]byte{[]byte(secretA)}, OTPSeeds: []string{seedA}, IsUser: true}}})
	if err != nil {
		t.Fatal(err)
	}
	h := newAuthHandler(v, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.metrics = newMetrics(store)
	ctx := context.Background()
	tok := mintWith(t, secretA, seedA, "alice", "a.example")
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
		{"tokenauthd_build_info", map[string]string{"version": versionString()}, 1},
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
		Hosts: map[string]verifier.Host{"a.example": {TokenSecrets: [][]byte{[]byte(secretA)}, OTPSeeds: []string{seedA}}}})
	if err != nil {
		t.Fatal(err)
	}
	h := newAuthHandler(v, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.metrics = newMetrics(store)
	if h.Answer(context.Background(), protocol.Request{Command: "auth", User: "alice", Server: "a.example",
		Password: mintWith(t, secretA, seedA, "alice", "a.example")}) {
		t.Fatal("accepted with the store down")
	}
	if got := scrapeValue(t, h.metrics, "tokenauthd_replay_store_errors_total", nil); got != 1 {
		t.Errorf("store errors %v, want 1", got)
	}
	if got := scrapeValue(t, h.metrics, "tokenauthd_requests_total", map[string]string{"reason": "store_unavailable", "result": "no"}); got != 1 {
		t.Errorf("store_unavailable refusals %v, want 1", got)
	}
	if got := scrapeValue(t, h.metrics, "tokenauthd_replay_store_records", nil); got != -1 {
		t.Errorf("records %v, want -1", got)
	}
	if got := scrapeValue(t, h.metrics, "tokenauthd_replay_live_evictions_total", nil); got != -1 {
		t.Errorf("live evictions exported for a store that has none: %v", got)
	}
}
