package verifier

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fuzzcorpus"
)

// The seeds of these targets are in testdata/fuzz/FuzzX/ (see
// TestFuzzCorpus); `go test` runs them, `go test -fuzz FuzzX` explores.

// FuzzParseToken checks that ParseToken never panics and that what it
// accepts is a token: digits, a space, 32 bytes of standard base64.
func FuzzParseToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, password string, digits int) {
		digits = 6 + abs(digits)%5
		tok, err := ParseToken(password, digits)
		if err != nil {
			if strings.Contains(err.Error(), password) && len(password) > 4 {
				t.Fatalf("error %q quotes the password", err)
			}
			return
		}
		decimal, sig, ok := strings.Cut(password, " ")
		if !ok || decimal != tok.OTP+tok.Nonce || len(tok.OTP) != digits {
			t.Fatalf("ParseToken(%q) = %q, %q", password, tok.OTP, tok.Nonce)
		}
		for _, c := range decimal {
			if c < '0' || c > '9' {
				t.Fatalf("ParseToken(%q) accepted a non-digit", password)
			}
		}
		sig = strings.Map(func(r rune) rune {
			if strings.ContainsRune(" \t\r\n", r) {
				return -1
			}
			return r
		}, sig)
		want, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(sig, "="))
		if err != nil || string(want) != string(tok.Signature[:]) {
			t.Fatalf("ParseToken(%q) signature %x, base64 says %x (%v)", password, tok.Signature, want, err)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		if n = -n; n < 0 {
			return 0
		}
	}
	return n
}

// FuzzVerify checks that any user, host and password get a verdict without
// a panic, that only a real token is accepted, and only once.
func FuzzVerify(f *testing.F) {
	const now = 1_700_000_000
	v, _ := newTest(f, now, DefaultParams())
	f.Fuzz(func(t *testing.T, user, host, password string, mint bool) {
		ctx := context.Background()
		if mint {
			// A real token for this user, with the fuzzed text as nonce
			// digits where it can be.
			nonce := strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return r
				}
				return -1
			}, password)
			tok, err := v.Mint(user, "example.org", time.Unix(now, 0), nonce+"1")
			if err != nil {
				return
			}
			if r := v.Verify(ctx, user, "example.org", tok); !r.OK() && r.Reason != Replayed {
				t.Fatalf("minted token for %q refused: %+v", user, r)
			}
			if r := v.Verify(ctx, user, "example.org", tok); r.Reason != Replayed {
				t.Fatalf("minted token for %q replayed: %+v", user, r)
			}
			return
		}
		r := v.Verify(ctx, user, host, password)
		if r.OK() {
			t.Fatalf("Verify(%q, %q, %q) accepted a fuzzed password", user, host, password)
		}
		switch r.Reason {
		case Malformed, UnknownHost, OTPOutOfWindow, BadSignature, Replayed:
		default:
			t.Fatalf("Verify(%q, %q, %q) = %+v", user, host, password, r)
		}
	})
}

// Every fuzz target has seeds that `go test` runs.
func TestFuzzCorpus(t *testing.T) { fuzzcorpus.Check(t) }
