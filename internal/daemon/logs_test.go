package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/logs/logstest"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// TestLogsHoldNoSecret: after a mix of accepted, replayed, forged,
// malformed, unknown-host and unsupported requests through the helper, at
// debug level, in both formats, the log has every refusal with its reason
// and not one secret, token, signature or nonce.
func TestLogsHoldNoSecret(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			path := fixture.ConfigPath(t)
			fixture.WriteFile(t, path, "[log]\nlevel = \"debug\"\nformat = \""+format+"\"\n"+
				fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, []string{fixture.SecretB}, []string{fixture.SeedB}))
			s := startSession(t, path)
			now := time.Now()
			good := fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", "a.example", now)
			old := fixture.MintAt(t, fixture.SecretB, fixture.SeedB, "bob", "a.example", now)
			forged := fixture.MintAt(t, fixture.SecretH, fixture.SeedA, "carol", "a.example", now)
			late := fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "dave", "a.example", now.Add(-time.Hour))
			otherHost := fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "erin", "z.example", now)
			secrets := []string{fixture.SecretA, fixture.SecretB, fixture.SecretH, fixture.SeedA, fixture.SeedB}
			var tokens []string
			for _, tok := range []string{good, old, forged, late, otherHost} {
				otpNonce, sig, _ := strings.Cut(tok, " ")
				tokens = append(tokens, tok, otpNonce, otpNonce[8:], sig, sig[:16])
			}
			reqs := []struct{ req, want, reason string }{
				{"auth:alice:a.example:" + good, "1", ""},
				{"auth:alice:a.example:" + good, "0", "replayed"},
				{"auth:bob:a.example:" + old, "1", ""},
				{"auth:carol:a.example:" + forged, "0", "bad_signature"},
				{"auth:dave:a.example:" + late, "0", "otp_out_of_window"},
				{"auth:erin:z.example:" + otherHost, "0", "unknown_host"},
				{"auth:frank:a.example:" + good[:20] + "x" + good[21:], "0", "malformed"},
				{"setpass:alice:a.example:" + good, "0", "unsupported_command"},
				{"tryregister:alice:a.example:" + good, "0", "unsupported_command"},
				{"hello:" + good, "0", "bad_request"},
				{"isuser:alice:a.example", "1", ""},
			}
			for _, r := range reqs {
				if got := s.ask(r.req); got != r.want {
					t.Fatalf("%.20s...: %s, want %s", r.req, got, r.want)
				}
			}
			s.close()
			logs := s.stderr.String()
			for _, r := range reqs {
				if r.reason != "" && !strings.Contains(logs, r.reason) {
					t.Errorf("refusal %s not logged", r.reason)
				}
			}
			for _, sec := range append(secrets, tokens...) {
				if strings.Contains(logs, sec) {
					t.Errorf("the log holds a secret, token, signature or nonce (%.6s...)", sec)
				}
			}
			if strings.Count(logs, "refused") != 8 {
				t.Errorf("%d refusal lines, want 8 (each once):\n%s", strings.Count(logs, "refused"), logs)
			}
			if format == "json" {
				logstest.Decode(t, bytes.NewBufferString(logs))
			}
		})
	}
}

// TestCapacityGuard: a flood of tokens with valid signatures for many users
// overflows a small store: every live record forced out is counted, the
// warning is logged (rate limited), and the metric reports the count.
func TestCapacityGuard(t *testing.T) {
	const capacity, flood = 1000, 1500
	var logs fixture.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	cfg := &config.Config{Capacity: capacity, Params: verifier.DefaultParams()}
	store := NewMemoryStore(cfg, log)
	v, err := verifier.New(verifier.Config{Params: cfg.Params, Store: store,
		Hosts: map[string]verifier.Host{"a.example": {TokenSecrets: [][]byte{[]byte(fixture.SecretA)}, OTPSeeds: []string{fixture.SeedA}}}})
	if err != nil {
		t.Fatal(err)
	}
	h := newAuthHandler(v, log)
	h.metrics = newMetrics(store)
	now := time.Now()
	for i := range flood {
		user := "user" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		tok, err := v.Mint(user, "a.example", now, "")
		if err != nil {
			t.Fatal(err)
		}
		if !h.Answer(context.Background(), protocol.Request{Command: "auth", User: user, Server: "a.example", Password: tok}) {
			t.Fatalf("token %d refused", i)
		}
	}
	if got := store.LiveEvictions(); got != flood-capacity {
		t.Fatalf("LiveEvictions = %d, want %d", got, flood-capacity)
	}
	lines := logstest.Decode(t, bytes.NewBufferString(logs.String()))
	// Rate limited: a burst, then a few a second, far fewer than the
	// evictions (the bound allows for a slow machine's refills).
	if n := logstest.Count(lines, "replay cache full: a record still inside its window was evicted; raise [replay] capacity", "live_eviction"); n < 1 || n > (flood-capacity)/5 {
		t.Fatalf("%d eviction warnings for %d evictions, want 1 to %d (rate limited)", n, flood-capacity, (flood-capacity)/5)
	}
	if got := scrapeValue(t, h.metrics, "tokenauthd_replay_live_evictions_total", nil); got != flood-capacity {
		t.Fatalf("tokenauthd_replay_live_evictions_total = %v, want %d", got, flood-capacity)
	}
	_ = replay.DefaultCapacity
}
