package verifier

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/replay"
)

// Every error the verifier makes is an *Error, or a *ParseError for a
// token, whose Detail is its message without the package's prefix: what
// a caller that prints its own context shows. The messages are as they
// were when callers cut the prefix off the text.
func TestErrorsAreTyped(t *testing.T) {
	st := replay.NewMemory(replay.MemoryOptions{Capacity: 10, TTL: time.Minute})
	good := Host{TokenSecrets: [][]byte{[]byte("k")}, OTPSeeds: []string{rfcSeed}}
	newErr := func(hosts map[string]Host, store replay.Store) error {
		_, err := New(Config{Params: DefaultParams(), Hosts: hosts, Store: store})
		return err
	}
	v, _ := newTest(t, 0, DefaultParams())
	mintErr := func(user, host string, at time.Time, nonce string) error {
		_, err := v.Mint(user, host, at, nonce)
		return err
	}
	p := DefaultParams()
	with := func(f func(*Params)) Params { q := p; f(&q); return q }
	tests := []struct {
		name string
		err  error
		want string // Detail
	}{
		{"digits", with(func(p *Params) { p.Digits = 5 }).Validate(), "digits must be 6 to 10, not 5"},
		{"interval", with(func(p *Params) { p.Interval = 1500 * time.Millisecond }).Validate(),
			"interval must be a whole number of seconds, at least 1, not 1.5s"},
		{"drift", with(func(p *Params) { p.Drift = 11 }).Validate(), "drift must be 0 to 10, not 11"},
		{"nonce digits", with(func(p *Params) { p.NonceDigits = -1 }).Validate(), "nonce digits must be 0 to 256, not -1"},
		{"New: params", func() error { _, err := New(Config{Params: Params{}, Store: st}); return err }(),
			"digits must be 6 to 10, not 0"},
		{"no store", newErr(map[string]Host{"h": good}, nil), "no replay store"},
		{"bad host", newErr(map[string]Host{"a@b": good}, st), `host name "a@b" has a forbidden character`},
		{"empty host", newErr(map[string]Host{"": good}, st), "empty host name"},
		{"no seed", newErr(map[string]Host{"h": {TokenSecrets: good.TokenSecrets}}, st), `host "h" needs a token secret and an otp seed, or JWT settings`},
		{"empty secret", newErr(map[string]Host{"h": {TokenSecrets: [][]byte{{}}, OTPSeeds: good.OTPSeeds}}, st), `host "h" has an empty token secret`},
		{"bad seed", newErr(map[string]Host{"h": {TokenSecrets: good.TokenSecrets, OTPSeeds: []string{"not base32!"}}}, st),
			`otp seed is not base32 (host "h")`},
		{"empty seed", func() error { _, err := NormalizeSeed(" = "); return err }(), "empty otp seed"},
		{"host name", ValidateHostName("a b"), `host name "a b" has a forbidden character`},
		{"mint: host", mintErr("alice", "example.com", time.Now(), ""), `unknown host "example.com"`},
		{"mint: user", mintErr("a@b", "example.org", time.Now(), ""), "user name cannot be a JID's local part"},
		{"mint: nonce", mintErr("alice", "example.org", time.Now(), "12a"), "nonce must be decimal digits"},
		{"mint: time", mintErr("alice", "example.org", time.Unix(-60, 0), ""), "time before the epoch"},
		{"verify: user", v.Verify(context.Background(), "a b", "example.org", "x").Err, "user name cannot be a JID's local part"},
	}
	for _, tt := range tests {
		var e *Error
		switch {
		case !errors.As(tt.err, &e):
			t.Errorf("%s: %T %v, want an *Error", tt.name, tt.err, tt.err)
		case e.Msg != tt.want || Detail(tt.err) != tt.want || tt.err.Error() != "verifier: "+tt.want:
			t.Errorf("%s: Msg %q, Detail %q, Error %q; want %q", tt.name, e.Msg, Detail(tt.err), tt.err, tt.want)
		}
	}
}

// A malformed token's error is a *ParseError, not an *Error: it tells
// where in the token the problem is.
func TestParseErrorDetail(t *testing.T) {
	_, err := ParseToken("1234567 AAAA", 8)
	var pe *ParseError
	var e *Error
	if !errors.As(err, &pe) || errors.As(err, &e) {
		t.Fatalf("%T %v, want a *ParseError only", err, err)
	}
	want := "malformed token at byte 7: fewer than 8 digits before the space"
	if Detail(err) != want || err.Error() != "verifier: "+want {
		t.Errorf("Detail %q, Error %q; want %q", Detail(err), err, want)
	}
}

// Detail cuts the prefix of the verifier's own errors only, not of errors
// that wrap them, whose text says more.
func TestDetailOfOtherErrors(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{errors.New("verifier: not ours"), "verifier: not ours"},
		{fmt.Errorf("config: %w", ValidateHostName("")), "config: verifier: empty host name"},
	} {
		if got := Detail(tt.err); got != tt.want {
			t.Errorf("Detail(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	cause := errors.New("cause")
	if e := (&Error{Msg: "nonce: cause", Err: cause}); Detail(e) != "nonce: cause" || !errors.Is(e, cause) {
		t.Errorf("an *Error with a cause: Detail %q, Is(cause) %v", Detail(e), errors.Is(e, cause))
	}
}
