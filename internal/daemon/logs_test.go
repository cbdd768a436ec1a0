package daemon

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/internal/logs/logstest"
	"github.com/tokenauthd/tokenauthd/internal/setup"
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
// overflows a small store. The first record forced out while still live is
// counted, logged and reported by the metric, and from then on no token of
// its time is accepted: the store can no longer vouch for them.
func TestCapacityGuard(t *testing.T) {
	const capacity, flood = 1000, 1500
	var logb fixture.Buffer
	log := slog.New(slog.NewJSONHandler(&logb, nil))
	cfg := &setup.Config{Config: &config.Config{Capacity: capacity}, Verifier: verifier.Config{Params: verifier.DefaultParams()}}
	store := newMemoryStore(cfg, log)
	v, err := verifier.New(verifier.Config{Params: cfg.Verifier.Params, Store: store,
		Hosts: map[string]verifier.Host{"a.example": {TokenSecrets: [][]byte{[]byte(fixture.SecretA)}, OTPSeeds: []string{fixture.SeedA}}}})
	if err != nil {
		t.Fatal(err)
	}
	h := newAuthHandler(v, log, logs.NewRateLog(log, nil), newMetrics(store), nil)
	now := time.Now()
	accepted := 0
	var toks []string
	for i := range flood {
		user := "user" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		tok, err := v.Mint(user, "a.example", now, "")
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
		if h.Answer(context.Background(), protocol.Request{Command: "auth", User: user, Server: "a.example", Password: tok}) {
			accepted++
		}
	}
	if accepted != capacity {
		t.Fatalf("%d tokens accepted, want the %d the store holds", accepted, capacity)
	}
	// The first token's record was forced out: a replay is refused.
	if h.Answer(context.Background(), protocol.Request{Command: "auth", User: "usera", Server: "a.example", Password: toks[0]}) {
		t.Fatal("a token whose record was forced out was accepted again")
	}
	if got := store.LiveEvictions(); got != 1 {
		t.Fatalf("LiveEvictions = %d, want 1", got)
	}
	lines := logstest.Decode(t, bytes.NewBufferString(logb.String()))
	if n := logstest.Count(lines, "replay cache full: a record still inside its window was forced out, so tokens minted before refused_until are refused; raise [replay] capacity", "live_eviction"); n != 1 {
		t.Fatalf("%d eviction warnings, want 1", n)
	}
	if got := scrapeValue(t, h.metrics, "tokenauthd_replay_live_evictions_total", nil); got != 1 {
		t.Fatalf("tokenauthd_replay_live_evictions_total = %v, want 1", got)
	}
}

// TestLongUserNameLogCut: a refused request with a 60 KB user name logs a
// line of bounded size that says it was cut (the stdin/stdout helper,
// in-process).
func TestLongUserNameLogCut(t *testing.T) {
	user := strings.Repeat("u", 60_000)
	code, out, errOut := runCmd(t, fixture.Frame("auth:"+user+":example.org:x"), "-config", fixture.RFCConfig(t, ""))
	if code != 0 || out != string(fixture.FrameNo) {
		t.Fatalf("exit %d, stdout %x", code, out)
	}
	fixture.CheckCutLog(t, errOut, 60_000)
}

// The nonce-length ambiguity of mod_auth_token's format: a token for
// "1admin" with nonce N signs the same message as one for "admin" with
// nonce N+"1". With the default nonce_digits = 32 the moved digit makes the
// nonce 33 digits long and the token is refused; with nonce_digits = 0 (the
// opt-out) it is accepted, and the configuration is warned about.
func TestNonceDigitsDefaultStopsImpersonation(t *testing.T) {
	at := time.Now()
	forge := func(cfgPath string) string {
		cfg, err := setup.Load(cfgPath, config.Options{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := cfg.NewVerifier(replay.NewMemory(replay.MemoryOptions{TTL: time.Minute}))
		if err != nil {
			t.Fatal(err)
		}
		// "1admin" holds a genuine token...
		tok, err := v.Mint("1admin", "example.org", at, strings.Repeat("7", 32))
		if err != nil {
			t.Fatal(err)
		}
		// ...and moves the leading "1" of its name to the end of the nonce.
		digits, sig, _ := strings.Cut(tok, " ")
		return "auth:admin:example.org:" + digits + "1 " + sig
	}
	tests := []struct {
		name    string
		extra   string
		yes     bool
		warning bool
	}{
		{"default", "", false, false},                                 // nonce_digits = 32
		{"explicit 32", "[token]\nnonce_digits = 32\n", false, false}, // same
		{"opt-out", "[token]\nnonce_digits = 0\n", true, true},        // accepted, and warned about
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fixture.RFCConfig(t, tt.extra)
			code, out, errOut := runCmd(t, forge(cfg)+"\n", "-config", cfg, "-protocol", "generic")
			if code != 0 || out != protocol.Reply(protocol.Generic, tt.yes) {
				t.Errorf("forged admin token: exit %d, reply %q, want yes=%v", code, out, tt.yes)
			}
			if got := strings.Contains(errOut, "nonce_digits = 0"); got != tt.warning {
				t.Errorf("start-up warning = %v, want %v; stderr:\n%s", got, tt.warning, errOut)
			}
			_, out, _ = runCmd(t, "", "check-config", "-config", cfg)
			if got := strings.Contains(out, "warning: [token] nonce_digits = 0"); got != tt.warning {
				t.Errorf("check-config warning = %v, want %v; output:\n%s", got, tt.warning, out)
			}
		})
	}
	if verifier.NonceDigits != 32 {
		t.Fatalf("verifier.NonceDigits = %d, want 32 (mod_auth_token's)", verifier.NonceDigits)
	}
}

// A measurement, not in the default suite: is the time to refuse a bad
// signature independent of how many of its bytes match? Run with
//
//	TOKENAUTHD_TIMING=1 go test -run TestTimingBadSignature -v .
//
// and see SECURITY.md for the figures.

func TestTimingBadSignature(t *testing.T) {
	if os.Getenv("TOKENAUTHD_TIMING") == "" {
		t.Skip("set TOKENAUTHD_TIMING=1 to measure")
	}
	now := time.Unix(1_800_000_000, 0)
	v, err := verifier.New(verifier.Config{Params: verifier.DefaultParams(), Now: func() time.Time { return now },
		Hosts: map[string]verifier.Host{"a.example": {TokenSecrets: [][]byte{[]byte(fixture.SecretA)}, OTPSeeds: []string{fixture.SeedA}}},
		Store: replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: time.Minute})})
	if err != nil {
		t.Fatal(err)
	}
	good, err := v.Mint("alice", "a.example", now, "12345678901234567890123456789012")
	if err != nil {
		t.Fatal(err)
	}
	head, sigText, _ := strings.Cut(good, " ")
	sig, _ := base64.StdEncoding.DecodeString(sigText)
	// A signature whose first n bytes are right and the rest wrong.
	withMatching := func(n int) string {
		s := slices.Clone(sig)
		for i := n; i < len(s); i++ {
			s[i] ^= 0xa5
		}
		return head + " " + base64.StdEncoding.EncodeToString(s)
	}
	classes := []int{0, 16, 31}
	toks := make([]string, len(classes))
	for i, n := range classes {
		toks[i] = withMatching(n)
		if r := v.Verify(context.Background(), "alice", "a.example", toks[i]); r.Reason != verifier.BadSignature {
			t.Fatalf("%d matching bytes: %s", n, r.Reason)
		}
	}
	const batches, per = 4000, 50
	samples := make([][]float64, len(classes))
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	for range batches {
		for _, c := range rng.Perm(len(classes)) { // interleaved, random order
			tok := toks[c]
			start := time.Now()
			for range per {
				v.Verify(ctx, "alice", "a.example", tok)
			}
			samples[c] = append(samples[c], float64(time.Since(start).Nanoseconds())/per)
		}
	}
	// A control: the same harness on an early-exit comparison (what
	// mod_auth_token's == does) over the same signatures, to show the
	// harness sees a data-dependent time when there is one.
	ctrl := make([][]float64, len(classes))
	raw := make([][]byte, len(classes))
	for i, n := range classes {
		raw[i] = slices.Clone(sig)
		for j := n; j < len(sig); j++ {
			raw[i][j] ^= 0xa5
		}
	}
	sink := 0
	for range batches {
		for _, c := range rng.Perm(len(classes)) {
			start := time.Now()
			for range per * 20 {
				if naiveEqual(raw[c], sig) {
					sink++
				}
			}
			ctrl[c] = append(ctrl[c], float64(time.Since(start).Nanoseconds())/(per*20))
		}
	}
	for i, n := range classes {
		s := ctrl[i]
		slices.Sort(s)
		t.Logf("control, early-exit compare, %2d matching bytes: ns per compare: median %.1f", n, s[len(s)/2])
	}
	for i, n := range classes {
		s := samples[i]
		slices.Sort(s)
		q := func(p float64) float64 { return s[int(p*float64(len(s)-1))] }
		t.Logf("%2d matching bytes: ns per refusal: p10 %.0f  median %.0f  p90 %.0f  (%d batches of %d)",
			n, q(0.10), q(0.50), q(0.90), len(s), per)
	}
}

// naiveEqual is the comparison tokenauthd must NOT use: it returns at the
// first differing byte.
//
//go:noinline
func naiveEqual(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
