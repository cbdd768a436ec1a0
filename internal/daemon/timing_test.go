package daemon

// A measurement, not in the default suite: is the time to refuse a bad
// signature independent of how many of its bytes match? Run with
//
//	TOKENAUTHD_TIMING=1 go test -run TestTimingBadSignature -v .
//
// and see SECURITY.md for the figures.

import (
	"context"
	"encoding/base64"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

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
