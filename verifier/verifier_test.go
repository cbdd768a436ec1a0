package verifier

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/tokenauthd/tokenauthd/internal/testclock"

	"github.com/tokenauthd/tokenauthd/replay"
)

// The RFC 6238 test seed ("12345678901234567890" in base32).
const rfcSeed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

const (
	secretA = "secret of example.org"
	secretB = "secret of example.net"
	seedB   = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	nonce32 = "01234567890123456789012345678901"
)

// newTest returns a verifier for example.org (RFC seed, secretA) and
// example.net (seedB, secretB) on a fresh memory store, and its clock set
// to unix time at.
func newTest(t testing.TB, at int64, p Params) (*Verifier, *testclock.Clock) {
	t.Helper()
	c := testclock.New(time.Unix(at, 0))
	v, err := New(Config{
		Params: p,
		Hosts: map[string]Host{
			"example.org": {TokenSecrets: [][]byte{[]byte(secretA)}, OTPSeeds: []string{rfcSeed}, IsUser: true},
			"example.net": {TokenSecrets: [][]byte{[]byte(secretB)}, OTPSeeds: []string{seedB}},
		},
		Store: replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: p.ReplayTTL(), Now: c.Now}),
		Now:   c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v, c
}

// RFC 6238's SHA1 test vectors, 8 digits, through the whole verifier.
func TestRFC6238Vectors(t *testing.T) {
	for _, tt := range []struct {
		at  int64
		otp string
	}{
		{59, "94287082"},         // RFC 6238 appendix B, T = 1
		{1111111109, "07081804"}, // T = 0x23523EC: a leading zero kept
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
	} {
		v, _ := newTest(t, tt.at, DefaultParams())
		tok := Sign([]byte(secretA), tt.otp, nonce32, "alice", "example.org")
		if r := v.Verify(context.Background(), "alice", "example.org", tok); r.Reason != Accepted || r.Offset != 0 {
			t.Errorf("t=%d: token with OTP %s: %+v, want accepted at offset 0", tt.at, tt.otp, r)
		}
		minted, err := v.Mint("alice", "example.org", time.Unix(tt.at, 0), nonce32)
		if err != nil || minted != tok {
			t.Errorf("t=%d: Mint = %q, %v; want %q", tt.at, minted, err, tok)
		}
		// One digit off is out of the window.
		wrong := fmt.Sprintf("%08d", (atoi(tt.otp)+1)%100000000)
		tok = Sign([]byte(secretA), wrong, nonce32, "alice", "example.org")
		if r := v.Verify(context.Background(), "alice", "example.org", tok); r.Reason != OTPOutOfWindow {
			t.Errorf("t=%d: token with OTP %s: %s, want %s", tt.at, wrong, r.Reason, OTPOutOfWindow)
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// tokenAt is a token for user@example.org minted for unix time at.
func tokenAt(t testing.TB, v *Verifier, user string, at int64, nonce string) string {
	t.Helper()
	tok, err := v.Mint(user, "example.org", time.Unix(at, 0), nonce)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerifyReasons(t *testing.T) {
	const now = 1_700_000_025 // 15 s into a step (1_700_000_010 starts one)
	v, _ := newTest(t, now, DefaultParams())
	good := tokenAt(t, v, "alice", now, nonce32)
	otpNonce, sig, _ := strings.Cut(good, " ")
	netTok, err := v.Mint("alice", "example.net", time.Unix(now, 0), nonce32)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, host, password string
		want                 Reason
		offset               int
	}{
		// A fresh token.
		{"alice", "example.org", good, Accepted, 0},
		// The same token again.
		{"alice", "example.org", good, Replayed, 0},
		// Minted one step earlier, the same step, one step later: the
		// window's edges.
		{"alice", "example.org", tokenAt(t, v, "alice", now-30, nonce32), Accepted, -1},
		{"alice", "example.org", tokenAt(t, v, "alice", now+30, nonce32), Accepted, 1},
		// The step's first and last second.
		{"alice", "example.org", tokenAt(t, v, "alice", now-15, "1"), Accepted, 0},
		{"alice", "example.org", tokenAt(t, v, "alice", now+14, "2"), Accepted, 0},
		// Two steps away, either way: out of the window.
		{"alice", "example.org", tokenAt(t, v, "alice", now-60, nonce32), OTPOutOfWindow, 0},
		{"alice", "example.org", tokenAt(t, v, "alice", now+60, nonce32), OTPOutOfWindow, 0},
		// Two minutes old.
		{"alice", "example.org", tokenAt(t, v, "alice", now-120, "3"), OTPOutOfWindow, 0},
		// Bob's token presented for alice.
		{"alice", "example.org", tokenAt(t, v, "bob", now, "4"), BadSignature, 0},
		// Alice's token with another nonce than it was signed with.
		{"alice", "example.org", otpNonce[:len(otpNonce)-1] + "9 " + sig, BadSignature, 0},
		// A token of another host (another seed and secret).
		{"alice", "example.org", netTok, OTPOutOfWindow, 0},
		// The right OTP with another host's secret.
		{"alice", "example.org", Sign([]byte(secretB), good[:8], "5", "alice", "example.org"), BadSignature, 0},
		// A token of example.org presented for example.net.
		{"alice", "example.net", tokenAt(t, v, "alice", now, "6"), OTPOutOfWindow, 0},
		// The right OTP and secret, signed for example.net's JID.
		{"alice", "example.org", Sign([]byte(secretA), good[:8], "7", "alice", "example.net"), BadSignature, 0},
		// An unknown host.
		{"alice", "example.com", good, UnknownHost, 0},
		// Not tokens.
		{"alice", "example.org", "", Malformed, 0},
		{"alice", "example.org", "hunter2", Malformed, 0},
		{"alice", "example.org", otpNonce, Malformed, 0},                      // no signature part
		{"alice", "example.org", "1234567 " + sig, Malformed, 0},              // 7 digits
		{"alice", "example.org", otpNonce + " " + sig[:20], Malformed, 0},     // short signature
		{"alice", "example.org", otpNonce + " " + sig + "AAAA", Malformed, 0}, // long signature
		{"alice", "example.org", otpNonce + " " + strings.Replace(sig, sig[:1], "*", 1), Malformed, 0},
		{"alice", "example.org", "x" + good, Malformed, 0},
		// User names no server hands over.
		{"", "example.org", good, Malformed, 0},
		{"al ice", "example.org", good, Malformed, 0},
		{"alice@example.org", "example.org", good, Malformed, 0},
		{"al:ice", "example.org", good, Malformed, 0},
	}
	for i, tt := range tests {
		r := v.Verify(context.Background(), tt.user, tt.host, tt.password)
		if r.Reason != tt.want || (r.OK() && r.Offset != tt.offset) {
			t.Errorf("#%d Verify(%q, %q, token) = %+v, want %s (offset %d)", i, tt.user, tt.host, r, tt.want, tt.offset)
		}
		if r.OK() != (tt.want == Accepted) {
			t.Errorf("#%d OK() = %v for %s", i, r.OK(), r.Reason)
		}
		if tt.want == Malformed {
			var perr *ParseError
			if r.Err == nil || (tt.user == "alice" && !errors.As(r.Err, &perr)) {
				t.Errorf("#%d malformed without a parse error: %v", i, r.Err)
			}
			// The error never holds the password.
			if r.Err != nil && len(tt.password) > 8 && strings.Contains(r.Err.Error(), tt.password[:8]) {
				t.Errorf("#%d error %q quotes the password", i, r.Err)
			}
		}
	}
}

// An empty nonce is a valid (if weak) token, as with mod_auth_token.
func TestVerifyEmptyNonce(t *testing.T) {
	v, _ := newTest(t, 1_700_000_000, DefaultParams())
	tok := Sign([]byte(secretA), tokenAt(t, v, "alice", 1_700_000_000, "1")[:8], "", "alice", "example.org")
	if r := v.Verify(context.Background(), "alice", "example.org", tok); !r.OK() {
		t.Fatalf("token with an empty nonce: %+v", r)
	}
	if r := v.Verify(context.Background(), "alice", "example.org", tok); r.Reason != Replayed {
		t.Fatalf("the same token again: %s, want replayed", r.Reason)
	}
}

// Upstream mod_auth_token forgets a JID's nonces when a token with another
// OTP arrives: token A, token B with the next OTP, then A again is accepted
// there. Not here.
func TestReplayAfterNextOTP(t *testing.T) {
	const now = 1_700_000_010
	v, c := newTest(t, now, DefaultParams())
	a := tokenAt(t, v, "alice", now, nonce32)
	b := tokenAt(t, v, "alice", now+30, nonce32) // the next step's OTP, same nonce
	ctx := context.Background()
	if r := v.Verify(ctx, "alice", "example.org", a); !r.OK() {
		t.Fatalf("token A: %+v", r)
	}
	c.Add(30 * time.Second) // B's step is now the current one
	if r := v.Verify(ctx, "alice", "example.org", b); !r.OK() {
		t.Fatalf("token B: %+v", r)
	}
	if r := v.Verify(ctx, "alice", "example.org", a); r.Reason != Replayed {
		t.Fatalf("token A again: %s, want replayed", r.Reason)
	}
	// And as long as A's OTP is inside the window (its step + 1).
	c.Add(19 * time.Second)
	if r := v.Verify(ctx, "alice", "example.org", a); r.Reason != Replayed {
		t.Fatalf("token A at the window's end: %s, want replayed", r.Reason)
	}
}

// Base32 seeds are case-insensitive and their padding is optional.
func TestSeedSpelling(t *testing.T) {
	const at = 59
	for _, s := range []string{
		rfcSeed,
		strings.ToLower(rfcSeed),
		"gezdgnbvgy3tqojqGEZDGNBVGY3TQOJQ",
		rfcSeed + "======",
		"JBSWY3DP" + "=", // another seed, padded oddly
		" " + rfcSeed + " ",
		"GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
	} {
		norm, err := NormalizeSeed(s)
		if err != nil {
			t.Errorf("NormalizeSeed(%q) = %v", s, err)
			continue
		}
		if strings.HasPrefix(norm, "JBSWY3DP") {
			continue
		}
		v, err := New(Config{
			Params: DefaultParams(),
			Hosts:  map[string]Host{"h": {TokenSecrets: [][]byte{[]byte("k")}, OTPSeeds: []string{s}}},
			Store:  replay.NewMemory(replay.MemoryOptions{Capacity: 10, TTL: time.Minute}),
			Now:    func() time.Time { return time.Unix(at, 0) },
		})
		if err != nil {
			t.Errorf("seed %q: %v", s, err)
			continue
		}
		tok := Sign([]byte("k"), "94287082", "1", "u", "h")
		if r := v.Verify(context.Background(), "u", "h", tok); !r.OK() {
			t.Errorf("seed %q: RFC token %+v", s, r)
		}
	}
	for _, s := range []string{"", "   ", "GEZDGNBV1", "GEZ!GNBV", "===="} {
		if _, err := NormalizeSeed(s); err == nil {
			t.Errorf("NormalizeSeed(%q) = nil error, want one", s)
		}
	}
}

// Whitespace inside the base64 signature is skipped, and its padding may
// be left out.
func TestSignatureSpelling(t *testing.T) {
	const now = 1_700_000_000
	v, _ := newTest(t, now, DefaultParams())
	for i, spell := range []func(sig string) string{
		func(sig string) string { return sig[:10] + " " + sig[10:20] + "\n" + sig[20:30] + "\t" + sig[30:] },
		func(sig string) string { return sig + "\r\n" },
		func(sig string) string { return strings.TrimRight(sig, "=") },
		func(sig string) string { return "  " + sig },
	} {
		tok := tokenAt(t, v, "alice", now, fmt.Sprint(i))
		otpNonce, sig, _ := strings.Cut(tok, " ")
		if r := v.Verify(context.Background(), "alice", "example.org", otpNonce+" "+spell(sig)); !r.OK() {
			t.Errorf("spelling #%d: %+v", i, r)
		}
	}
}

// NonceDigits makes the nonce's length exact.
func TestNonceDigits(t *testing.T) {
	const now = 1_700_000_000
	p := DefaultParams()
	p.NonceDigits = 32
	v, _ := newTest(t, now, p)
	tests := []struct {
		nonce string
		want  Reason
	}{
		{nonce32, Accepted},        // 32 digits
		{nonce32[:31], Malformed},  // 31
		{nonce32 + "1", Malformed}, // 33
		{"", Malformed},            // none
		{strings.Repeat("7", 32), Accepted},
	}
	for _, tt := range tests {
		tok := Sign([]byte(secretA), tokenAt(t, v, "x", now, "1")[:8], tt.nonce, "alice", "example.org")
		if r := v.Verify(context.Background(), "alice", "example.org", tok); r.Reason != tt.want {
			t.Errorf("nonce of %d digits: %s, want %s", len(tt.nonce), r.Reason, tt.want)
		}
	}
	// Mint makes nonces of that length.
	tok, err := v.Mint("bob", "example.org", time.Unix(now, 0), "")
	if err != nil || strings.Index(tok, " ") != 8+32 {
		t.Errorf("Mint = %q, %v; want a 32-digit nonce", tok, err)
	}
}

// Without NonceDigits, "9bob" with nonce "9" and "bob" with nonce "99"
// share a signature; with it, they cannot both be valid.
func TestNonceDigitsAmbiguity(t *testing.T) {
	const now = 1_700_000_000
	v, _ := newTest(t, now, DefaultParams())
	forNineBob := tokenAt(t, v, "9bob", now, "9")
	otp := forNineBob[:8]
	forBob := otp + "99 " + forNineBob[len(otp)+2:]
	if r := v.Verify(context.Background(), "bob", "example.org", forBob); !r.OK() {
		t.Fatalf("variable nonce length: the derived token was refused (%s); the ambiguity this test documents is gone", r.Reason)
	}
	p := DefaultParams()
	p.NonceDigits = 1
	v, _ = newTest(t, now, p)
	if r := v.Verify(context.Background(), "bob", "example.org", forBob); r.Reason != Malformed {
		t.Fatalf("nonce_digits = 1: the derived token: %s, want malformed", r.Reason)
	}
}

// Rotation: old seeds and secrets are still accepted, and reported.
func TestRotation(t *testing.T) {
	const now = 1_700_000_000
	st := replay.NewMemory(replay.MemoryOptions{Capacity: 100, TTL: time.Minute})
	v, err := New(Config{
		Params: DefaultParams(),
		Hosts: map[string]Host{"h": {
			TokenSecrets: [][]byte{[]byte("new"), []byte("old")},
			OTPSeeds:     []string{seedB, rfcSeed},
		}},
		Store: st,
		Now:   func() time.Time { return time.Unix(now, 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	old, _ := newTest(t, now, DefaultParams()) // mints with rfcSeed
	oldOTP := tokenAt(t, old, "u", now, "1")[:8]
	newTok, err := v.Mint("u", "h", time.Unix(now, 0), "1")
	if err != nil {
		t.Fatal(err)
	}
	newOTP := newTok[:8]
	for i, tt := range []struct {
		otp, secret  string
		seed, secIdx int
	}{
		{newOTP, "new", 0, 0},
		{oldOTP, "new", 1, 0},
		{newOTP, "old", 0, 1},
		{oldOTP, "old", 1, 1},
	} {
		tok := Sign([]byte(tt.secret), tt.otp, fmt.Sprint(i), "u", "h")
		r := v.Verify(context.Background(), "u", "h", tok)
		if !r.OK() || r.Seed != tt.seed || r.Secret != tt.secIdx {
			t.Errorf("otp of seed %d, secret %q: %+v, want accepted with seed %d secret %d", tt.seed, tt.secret, r, tt.seed, tt.secIdx)
		}
	}
	if r := v.Verify(context.Background(), "u", "h", Sign([]byte("other"), newOTP, "3", "u", "h")); r.Reason != BadSignature {
		t.Errorf("unknown secret: %s", r.Reason)
	}
}

// failingStore cannot answer.
type failingStore struct{}

func (failingStore) Record(context.Context, replay.Key) (bool, error) {
	return false, fmt.Errorf("%w: down", replay.ErrUnavailable)
}
func (failingStore) Seen(context.Context, replay.Key) (bool, error) {
	return false, fmt.Errorf("%w: down", replay.ErrUnavailable)
}
func (failingStore) Len() int               { return -1 }
func (failingStore) Close() error           { return nil }
func (failingStore) ForgottenAt() time.Time { return time.Time{} }

// forgettingStore is a memory store that reports it may have lost records
// at a given moment: from the start, or only once a Record has run (a loss
// found while recording, as on a reconnection to a restarted Redis).
type forgettingStore struct {
	*replay.Memory
	at       time.Time
	onRecord bool
	recorded bool
}

func (s *forgettingStore) Record(ctx context.Context, k replay.Key) (bool, error) {
	s.recorded = true
	return s.Memory.Record(ctx, k)
}

func (s *forgettingStore) ForgottenAt() time.Time {
	if s.onRecord && !s.recorded {
		return time.Time{}
	}
	return s.at
}

// A store that may have lost records refuses every token a process that
// lost them could have accepted: a step up to the loss's step plus drift.
// Verify and Check agree; a loss found while recording refuses too.
func TestStoreForgot(t *testing.T) {
	const now = 1_700_000_030 // 20 s into its step
	p := DefaultParams()
	for _, tt := range []struct {
		name     string
		forgot   int64 // Unix seconds; 0: never
		onRecord bool
		refused  []int // offsets refused among -1, 0, +1
	}{
		{"never", 0, false, nil},
		{"this step", now - 5, false, []int{-1, 0, 1}},
		{"this step, found while recording", now, true, []int{-1, 0, 1}},
		{"previous step", now - 30, false, []int{-1, 0}},
		{"two steps ago", now - 60, false, []int{-1}},
		{"three steps ago", now - 90, false, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for off := -1; off <= 1; off++ {
				v, c := newTest(t, now, p)
				s := &forgettingStore{Memory: v.store.(*replay.Memory), onRecord: tt.onRecord}
				if tt.forgot != 0 {
					s.at = time.Unix(tt.forgot, 0)
				}
				v.store = s
				tok := tokenAt(t, v, "alice", c.Now().Unix()+int64(off)*30, "1")
				want := Accepted
				if slices.Contains(tt.refused, off) {
					want = StoreForgot
				}
				checked := v.Check(context.Background(), "alice", "example.org", tok)
				r := v.Verify(context.Background(), "alice", "example.org", tok)
				if r.Reason != want {
					t.Errorf("offset %+d: Verify %s, want %s", off, r.Reason, want)
				}
				if wantCheck := map[bool]Reason{true: Accepted, false: want}[tt.onRecord]; checked.Reason != wantCheck {
					t.Errorf("offset %+d: Check %s, want %s", off, checked.Reason, wantCheck)
				}
				if want == StoreForgot && (!r.Forgot.Equal(s.at) || r.Err == nil || !strings.Contains(r.Err.Error(), "tokens minted before")) {
					t.Errorf("offset %+d: %+v: no moment or explanation", off, r)
				}
				var fe *ForgotError
				if want == StoreForgot && (!errors.As(r.Err, &fe) || !fe.At.Equal(s.at) || !fe.Until.Equal(p.RefusalEnds(s.at))) {
					t.Errorf("offset %+d: Err %#v, want a *ForgotError at %v until %v", off, r.Err, s.at, p.RefusalEnds(s.at))
				}
				if r.OK() { // once accepted, a replay is a replay
					if r := v.Verify(context.Background(), "alice", "example.org", tok); r.Reason != Replayed {
						t.Errorf("offset %+d: replay %s", off, r.Reason)
					}
				}
			}
		})
	}
}

// The refusals end drift+1 steps after the loss's step began: 30 to 60 s
// with the defaults.
func TestRefusalEnds(t *testing.T) {
	p := DefaultParams()
	for _, tt := range []struct{ forgot, ends int64 }{
		{1_699_999_980, 1_700_000_040}, // the first second of a step: 60 s
		{1_700_000_009, 1_700_000_040},
		{1_700_000_009 + 1, 1_700_000_070},
		{1_700_000_039, 1_700_000_070}, // its last second: 31 s
	} {
		if got := p.RefusalEnds(time.Unix(tt.forgot, 0)); got.Unix() != tt.ends {
			t.Errorf("RefusalEnds(%d) = %d, want %d", tt.forgot, got.Unix(), tt.ends)
		}
	}
	p.Interval, p.Drift = 5*time.Second, 2
	if got := p.RefusalEnds(time.Unix(1_700_000_001, 0)); got.Unix() != 1_700_000_015 {
		t.Errorf("5 s steps, drift 2: %d", got.Unix())
	}
}

// A store that cannot answer means no: fail closed.
func TestStoreUnavailable(t *testing.T) {
	const now = 1_700_000_000
	v, _ := newTest(t, now, DefaultParams())
	v2, err := New(Config{Params: DefaultParams(), Hosts: map[string]Host{
		"example.org": {TokenSecrets: [][]byte{[]byte(secretA)}, OTPSeeds: []string{rfcSeed}},
	}, Store: failingStore{}, Now: func() time.Time { return time.Unix(now, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	tok := tokenAt(t, v, "alice", now, "1")
	for _, f := range []func(context.Context, string, string, string) Result{v2.Verify, v2.Explain} {
		r := f(context.Background(), "alice", "example.org", tok)
		if r.Reason != StoreUnavailable || r.OK() || !errors.Is(r.Err, replay.ErrUnavailable) {
			t.Errorf("failing store: %+v, want store_unavailable", r)
		}
	}
	// A bad token is refused for what it is, without asking the store.
	if r := v2.Verify(context.Background(), "bob", "example.org", tok); r.Reason != BadSignature {
		t.Errorf("bad token, failing store: %s, want bad_signature", r.Reason)
	}
}

// Explain says what Verify would, without recording, and finds how far an
// out-of-window OTP is.
func TestExplain(t *testing.T) {
	const now = 1_700_000_000
	v, _ := newTest(t, now, DefaultParams())
	ctx := context.Background()
	tok := tokenAt(t, v, "alice", now, "1")
	for i := 0; i < 2; i++ {
		if r := v.Explain(ctx, "alice", "example.org", tok); !r.OK() {
			t.Fatalf("Explain #%d: %+v, want accepted (and nothing recorded)", i, r)
		}
	}
	v.Verify(ctx, "alice", "example.org", tok)
	if r := v.Explain(ctx, "alice", "example.org", tok); r.Reason != Replayed {
		t.Errorf("Explain after Verify: %s, want replayed", r.Reason)
	}
	stale := tokenAt(t, v, "alice", now-300, "1")
	if r := v.Explain(ctx, "alice", "example.org", stale); r.Reason != OTPOutOfWindow || r.Offset != -10 || r.Far {
		t.Errorf("Explain of a 5-minute-old token: %+v, want out of window at offset -10", r)
	}
	if r := v.Explain(ctx, "alice", "example.org", "00000000 "+strings.Repeat("A", 43)+"="); r.Reason != BadSignature && r.Reason != OTPOutOfWindow {
		t.Errorf("Explain of a made-up token: %+v", r)
	}
}

func TestIsUser(t *testing.T) {
	v, _ := newTest(t, 0, DefaultParams())
	for _, tt := range []struct {
		user, host string
		want       bool
	}{
		{"alice", "example.org", true},  // isuser = true
		{"anyone", "example.org", true}, // every user, as mod_auth_token
		{"alice", "example.net", false}, // isuser = false
		{"alice", "example.com", false}, // unknown host
		{"", "example.org", false},      // no user
		{"a b", "example.org", false},   // not a local part
	} {
		if got := v.IsUser(tt.user, tt.host); got != tt.want {
			t.Errorf("IsUser(%q, %q) = %v, want %v", tt.user, tt.host, got, tt.want)
		}
	}
}

func TestParams(t *testing.T) {
	ok := DefaultParams()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if got := ok.ReplayTTL(); got != 120*time.Second {
		t.Errorf("ReplayTTL() = %v, want 2m (3 steps + 1 of margin)", got)
	}
	for _, p := range []Params{
		{Digits: 5, Interval: 30 * time.Second, Drift: 1},
		{Digits: 11, Interval: 30 * time.Second, Drift: 1},
		{Digits: 8, Interval: 0, Drift: 1},
		{Digits: 8, Interval: 1500 * time.Millisecond, Drift: 1},
		{Digits: 8, Interval: 30 * time.Second, Drift: -1},
		{Digits: 8, Interval: 30 * time.Second, Drift: 11},
		{Digits: 8, Interval: 30 * time.Second, Drift: 1, NonceDigits: -1},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", p)
		}
		if _, err := New(Config{Params: p, Store: failingStore{}}); err == nil {
			t.Errorf("New with %+v = nil error", p)
		}
	}
}

func TestNewErrors(t *testing.T) {
	st := replay.NewMemory(replay.MemoryOptions{Capacity: 10, TTL: time.Minute})
	good := Host{TokenSecrets: [][]byte{[]byte("k")}, OTPSeeds: []string{rfcSeed}}
	for name, c := range map[string]Config{
		"no store":     {Params: DefaultParams(), Hosts: map[string]Host{"h": good}},
		"bad host":     {Params: DefaultParams(), Hosts: map[string]Host{"a@b": good}, Store: st},
		"empty host":   {Params: DefaultParams(), Hosts: map[string]Host{"": good}, Store: st},
		"no secret":    {Params: DefaultParams(), Hosts: map[string]Host{"h": {OTPSeeds: []string{rfcSeed}}}, Store: st},
		"no seed":      {Params: DefaultParams(), Hosts: map[string]Host{"h": {TokenSecrets: [][]byte{[]byte("k")}}}, Store: st},
		"empty secret": {Params: DefaultParams(), Hosts: map[string]Host{"h": {TokenSecrets: [][]byte{{}}, OTPSeeds: []string{rfcSeed}}}, Store: st},
		"bad seed":     {Params: DefaultParams(), Hosts: map[string]Host{"h": {TokenSecrets: [][]byte{[]byte("k")}, OTPSeeds: []string{"not base32!"}}}, Store: st},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%s: New = nil error", name)
		} else if strings.Contains(err.Error(), "not base32!") {
			t.Errorf("%s: error %q quotes the seed", name, err)
		}
	}
}

func TestMint(t *testing.T) {
	v, _ := newTest(t, 0, DefaultParams())
	for _, tt := range []struct {
		user, host, nonce string
	}{
		{"alice", "example.com", ""}, // unknown host
		{"", "example.org", ""},      // no user
		{"alice", "example.org", "12a"},
	} {
		if tok, err := v.Mint(tt.user, tt.host, time.Unix(59, 0), tt.nonce); err == nil {
			t.Errorf("Mint(%q, %q, nonce %q) = %q, want an error", tt.user, tt.host, tt.nonce, tok)
		}
	}
	if _, err := v.Mint("alice", "example.org", time.Unix(-100, 0), ""); err == nil {
		t.Error("Mint before the epoch: no error")
	}
	a, _ := v.Mint("alice", "example.org", time.Unix(59, 0), "")
	b, _ := v.Mint("alice", "example.org", time.Unix(59, 0), "")
	if a == b || len(a) != len(b) || strings.Index(a, " ") != 40 {
		t.Errorf("two minted tokens: %q, %q; want distinct random 32-digit nonces", a, b)
	}
}

func TestParseToken(t *testing.T) {
	sig := "lqB0bzw8kwEyMKqVE0mbWnUkxAcRmKcu3U2Hg3jgW7s="
	tests := []struct {
		in         string
		otp, nonce string
		ok         bool
	}{
		{"12345678 " + sig, "12345678", "", true},                           // no nonce
		{"123456789 " + sig, "12345678", "9", true},                         // one digit
		{"12345678" + nonce32 + " " + sig, "12345678", nonce32, true},       // 32 digits
		{"12345678 " + strings.TrimRight(sig, "="), "12345678", "", true},   // no padding
		{"12345678 " + sig[:20] + "\t \n" + sig[20:], "12345678", "", true}, // whitespace
		{"12345678  " + sig, "12345678", "", true},                          // two spaces
		{"", "", "", false},                                     // empty
		{"12345678", "", "", false},                             // no space
		{"1234567 " + sig, "", "", false},                       // 7 digits
		{" 12345678 " + sig, "", "", false},                     // leading space
		{"1234a678 " + sig, "", "", false},                      // a letter
		{"12345678 ", "", "", false},                            // no signature
		{"12345678 " + sig[:40], "", "", false},                 // 30 bytes
		{"12345678 " + sig + sig, "", "", false},                // 64 bytes
		{"12345678 " + strings.Repeat("A", 100), "", "", false}, // too long
		{"12345678 " + sig[:43] + "-", "", "", false},           // URL alphabet
		{"12345678 " + "=" + sig[1:], "", "", false},            // padding first
		{"１2345678 " + sig, "", "", false},                      // non-ASCII digit
		{"12345678\x00 " + sig, "", "", false},                  // NUL
	}
	for _, tt := range tests {
		tok, err := ParseToken(tt.in, 8)
		if tt.ok != (err == nil) {
			t.Errorf("ParseToken(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if !tt.ok {
			var perr *ParseError
			if !errors.As(err, &perr) {
				t.Errorf("ParseToken(%q) error %T, want *ParseError", tt.in, err)
			}
			continue
		}
		if tok.OTP != tt.otp || tok.Nonce != tt.nonce {
			t.Errorf("ParseToken(%q) = %q, %q; want %q, %q", tt.in, tok.OTP, tok.Nonce, tt.otp, tt.nonce)
		}
	}
}

// The codes of the window are computed once per time step, not per
// request: a refusal after the OTP and signature checks allocates nothing
// (computing a TOTP code with pquerna/otp allocates).
// A host's first token in a time step makes its window of codes, the one
// cost of a token that grows with the hosts that see few logins: with
// 10,000 hosts, most tokens are their host's first in the step. Making it
// takes one allocation (the window, its codes inline), not the dozen per
// code of decoding the seed, keying an HMAC and formatting each code anew.
func TestSeedWindowAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	const now = 1_700_000_000
	v, _ := newTest(t, now, DefaultParams())
	s := &v.hosts["example.org"].seeds[0]
	step := int64(now / 30)
	allocs := testing.AllocsPerRun(100, func() {
		step++ // a new step: a new window
		s.match(step, v.p.Drift, "00000000")
	})
	if allocs > 1 {
		t.Errorf("a new window allocates %.1f times, want at most 1", allocs)
	}
}

func TestVerifyCachesWindow(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	const now = 1_700_000_000
	v, _ := newTest(t, now, DefaultParams())
	tok := tokenAt(t, v, "alice", now, nonce32)
	ctx := context.Background()
	v.Verify(ctx, "bob", "example.org", tok) // fills the window
	allocs := testing.AllocsPerRun(100, func() {
		if r := v.Verify(ctx, "bob", "example.org", tok); r.Reason != BadSignature {
			t.Fatalf("%+v", r)
		}
	})
	if allocs != 0 {
		t.Errorf("a refusal allocates %.1f times: codes computed per request?", allocs)
	}
}

// A seed's codes are HOTP's (RFC 4226), as pquerna/otp makes them, for
// seeds of every length, steps near 0 and far away, and every number of
// digits; a step before 1970 has none.
func TestSeedCode(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 2000; n++ {
		raw := make([]byte, 5+rng.IntN(40))
		for i := range raw {
			raw[i] = byte(rng.UintN(256))
		}
		key, err := NormalizeSeed(base32.StdEncoding.EncodeToString(raw))
		if err != nil {
			t.Fatal(err)
		}
		digits := 6 + n%5
		s, err := newSeed(key, digits)
		if err != nil {
			t.Fatalf("seed %q: %v", key, err)
		}
		for _, step := range []int64{0, 1, int64(rng.Uint32()), rng.Int64(), math.MaxInt64} {
			want, err := hotp.GenerateCodeCustom(key, uint64(step), hotp.ValidateOpts{Digits: otp.Digits(digits), Algorithm: otp.AlgorithmSHA1})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.code(step); got != want {
				t.Fatalf("seed %q, step %d, %d digits: code %q, want %q", key, step, digits, got, want)
			}
		}
		if got := s.code(-1); got != "" {
			t.Fatalf("step -1: code %q, want none", got)
		}
	}
}

// TestSeenFor: a host with SeenFor answers no to IsUser, whatever its
// IsUser says (its caller answers from logins), and SeenFor says so; other
// hosts and unknown ones have none.
func TestSeenFor(t *testing.T) {
	v, err := New(Config{
		Params: DefaultParams(),
		Hosts: map[string]Host{
			"seen.example":  {TokenSecrets: [][]byte{[]byte(secretA)}, OTPSeeds: []string{rfcSeed}, IsUser: true, SeenFor: time.Hour},
			"every.example": {TokenSecrets: [][]byte{[]byte(secretA)}, OTPSeeds: []string{rfcSeed}, IsUser: true},
		},
		Store: replay.NewMemory(replay.MemoryOptions{Capacity: 10, TTL: DefaultParams().ReplayTTL()}),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		host    string
		isUser  bool
		seenFor time.Duration
	}{
		{"seen.example", false, time.Hour},
		{"every.example", true, 0},
		{"unknown.example", false, 0},
	} {
		if got := v.IsUser("alice", c.host); got != c.isUser {
			t.Errorf("IsUser(alice, %s) = %v, want %v", c.host, got, c.isUser)
		}
		if got := v.SeenFor(c.host); got != c.seenFor {
			t.Errorf("SeenFor(%s) = %v, want %v", c.host, got, c.seenFor)
		}
	}
}

// A secret's sums are crypto/hmac's HMAC-SHA256, for keys shorter than,
// as long as and longer than SHA-256's block (hashed first), and messages
// of every length around a block, one scratch reused throughout.
func TestSecretSumIsHMAC(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := newScratch().(*scratch)
	for n := 0; n < 2000; n++ {
		key := make([]byte, 1+rng.IntN(200))
		if n < 3 {
			key = make([]byte, []int{63, 64, 65}[n])
		}
		msg := make([]byte, rng.IntN(300))
		for _, b := range [][]byte{key, msg} {
			for i := range b {
				b[i] = byte(rng.UintN(256))
			}
		}
		s, err := newSecret(key)
		if err != nil {
			t.Fatal(err)
		}
		if s.pads[0] != nil || s.pads[1] != nil {
			t.Fatalf("key of %d bytes: its states not kept compact", len(key))
		}
		// The same secret with its states kept whole, as when their
		// marshalled form is not the one expected.
		whole := s
		for i := range whole.pads {
			st, err := oneBlockState(make([]byte, sha256.BlockSize))
			if err != nil {
				t.Fatal(err)
			}
			copy(st[chainAt:], s.state[i][:])
			whole.pads[i] = st
		}
		want := hmac.New(sha256.New, key)
		want.Write(msg)
		for _, s := range []secret{s, whole} {
			got, err := s.sum(m, msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Sum(nil)) {
				t.Fatalf("key of %d bytes, message of %d, whole states %v: sum %x, want crypto/hmac's %x",
					len(key), len(msg), s.pads[0] != nil, got, want.Sum(nil))
			}
		}
	}
}

// Tokens verified from many goroutines at once, over two hosts, each
// token sent by two goroutines, and forgeries (another host's signature)
// among them: every fresh token accepted exactly once, every forgery
// refused. They share the verifier's scratch and each host's window of
// codes (made by whichever comes first, the step moved on mid-way).
func TestVerifyConcurrent(t *testing.T) {
	const now, tokens = 1_700_000_025, 400
	v, clock := newTest(t, now, DefaultParams())
	type req struct{ host, token string }
	reqs := make([]req, tokens)
	for i := range reqs {
		host := []string{"example.org", "example.net"}[i%2]
		tok, err := v.Mint("alice", host, time.Unix(now+30, 0), fmt.Sprintf("%032d", i))
		if err != nil {
			t.Fatal(err)
		}
		reqs[i] = req{host, tok}
	}
	clock.Set(time.Unix(now+30, 0)) // every window made anew by the goroutines
	var accepted [tokens]atomic.Int32
	var forged atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g % 4; i < tokens; i += 4 { // goroutines g and g+4 send the same tokens
				r := reqs[i]
				if v.Verify(context.Background(), "alice", r.host, r.token).OK() {
					accepted[i].Add(1)
				}
				other := map[string]string{"example.org": "example.net", "example.net": "example.org"}[r.host]
				if v.Verify(context.Background(), "alice", other, r.token).OK() {
					forged.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	for i := range accepted {
		if n := accepted[i].Load(); n != 1 {
			t.Errorf("token %d accepted %d times, want once", i, n)
		}
	}
	if n := forged.Load(); n != 0 {
		t.Errorf("%d tokens accepted for another host", n)
	}
}

// A memory store full of live records forces out the oldest to take a new
// one. The token that record stood for must then be refused, not accepted a
// second time: so must every token of its steps (the store cannot tell
// which it held), until tokens minted after it.
func TestFullMemoryStoreRefusesWhatItForgot(t *testing.T) {
	const now = 1_700_000_030
	p := DefaultParams()
	c := testclock.New(time.Unix(now, 0))
	v, err := New(Config{
		Params: p,
		Hosts:  map[string]Host{"example.org": {TokenSecrets: [][]byte{[]byte(secretA)}, OTPSeeds: []string{rfcSeed}}},
		Store:  replay.NewMemory(replay.MemoryOptions{Capacity: 3, TTL: p.ReplayTTL(), Now: c.Now}),
		Now:    c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	verify := func(nonce string) Reason {
		return v.Verify(ctx, "alice", "example.org", tokenAt(t, v, "alice", c.Now().Unix(), nonce)).Reason
	}
	for _, nonce := range []string{"1", "2", "3"} {
		if r := verify(nonce); r != Accepted {
			t.Fatalf("token %s: %s", nonce, r)
		}
	}
	c.Add(time.Second)
	// The fourth record forces out the first, still live: from then on the
	// store cannot vouch for a token of that step.
	for _, tt := range []struct {
		nonce string
		want  Reason
	}{{"4", StoreForgot}, {"1", StoreForgot}, {"2", StoreForgot}} {
		if r := verify(tt.nonce); r != tt.want {
			t.Errorf("token %s: %s, want %s", tt.nonce, r, tt.want)
		}
	}
	c.Add(2 * p.Interval) // past the forgotten record's steps and drift
	if r := verify("5"); r != Accepted {
		t.Errorf("a token minted after the forgotten record: %s", r)
	}
}
