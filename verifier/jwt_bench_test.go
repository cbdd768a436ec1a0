//go:build unix

package verifier

import (
	"context"
	"crypto"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthd/tokenauthd/replay"
)

// jwtBenchAlgs are the algorithms benchmarked, each with the test key set's
// kid and private key.
func jwtBenchAlgs() []struct {
	alg string
	m   jwt.SigningMethod
	kid string
	key any
} {
	k := jwtTestKeys()
	return []struct {
		alg string
		m   jwt.SigningMethod
		kid string
		key any
	}{
		{"EdDSA", jwt.SigningMethodEdDSA, kidEd, k.ed},
		{"ES256", jwt.SigningMethodES256, kidEC, k.ec},
		{"RS256", jwt.SigningMethodRS256, kidRSA, k.rsa},
		{"PS256", jwt.SigningMethodPS256, kidRSA2, k.rsa2},
		{"HS256", jwt.SigningMethodHS256, kidHS, k.hmac},
	}
}

// jwtBenchVerifier is newJWTTest's verifier on a store of capacity n (at
// least 1,000).
func jwtBenchVerifier(b *testing.B, n int) *Verifier {
	b.Helper()
	v, c := newJWTTest(b, testJWT(b))
	v.store = replay.NewMemory(replay.MemoryOptions{Capacity: max(n, 1000), TTL: v.p.ReplayTTL(), Now: c.Now})
	return v
}

// BenchmarkVerifyJWT measures one JWT's verdict, per algorithm:
//
//   - check: Check of a good JWT, recorded nowhere (signature, claims,
//     and the store's Seen);
//   - replayed: Verify of a JWT already accepted: everything Verify does,
//     its Record included;
//   - accepted (not RSA, whose signing is too slow to make b.N JWTs):
//     Verify of b.N distinct fresh JWTs, made before the timer starts,
//     each recorded.
func BenchmarkVerifyJWT(b *testing.B) {
	ctx := context.Background()
	for _, a := range jwtBenchAlgs() {
		b.Run(a.alg+"/check", func(b *testing.B) {
			v := jwtBenchVerifier(b, 0)
			tok := signJWT(b, a.m, a.key, a.kid, claims("alice", "example.org", jwtNow))
			b.ReportAllocs()
			b.ResetTimer()
			defer cpuTimer(b)()
			for i := 0; i < b.N; i++ {
				if r := v.Check(ctx, "alice", "example.org", tok); !r.OK() {
					b.Fatalf("%+v", r)
				}
			}
		})
		b.Run(a.alg+"/replayed", func(b *testing.B) {
			v := jwtBenchVerifier(b, 0)
			tok := signJWT(b, a.m, a.key, a.kid, claims("alice", "example.org", jwtNow))
			if r := v.Verify(ctx, "alice", "example.org", tok); !r.OK() {
				b.Fatalf("%+v", r)
			}
			b.ReportAllocs()
			b.ResetTimer()
			defer cpuTimer(b)()
			for i := 0; i < b.N; i++ {
				if r := v.Verify(ctx, "alice", "example.org", tok); r.Reason != Replayed {
					b.Fatalf("%+v", r)
				}
			}
		})
		if a.alg == "RS256" || a.alg == "PS256" {
			continue
		}
		b.Run(a.alg+"/accepted", func(b *testing.B) {
			v := jwtBenchVerifier(b, b.N)
			toks := make([]string, b.N)
			for i := range toks {
				toks[i] = signJWT(b, a.m, a.key, a.kid, claims("alice", "example.org", jwtNow))
			}
			verifyAll(b, v, toks)
		})
	}
}

// BenchmarkJWTLibrary is the floor: golang-jwt alone parsing and verifying
// the same JWTs into its MapClaims, with the key at hand (no key set, no
// JID, lifetime or replay checks).
func BenchmarkJWTLibrary(b *testing.B) {
	for _, a := range jwtBenchAlgs() {
		b.Run(a.alg, func(b *testing.B) {
			tok := signJWT(b, a.m, a.key, a.kid, claims("alice", "example.org", jwtNow))
			var pub any = a.key // an HMAC key
			if k, ok := a.key.(crypto.Signer); ok {
				pub = k.Public()
			}
			p := jwt.NewParser(jwt.WithValidMethods([]string{a.alg}), jwt.WithExpirationRequired(),
				jwt.WithTimeFunc(func() time.Time { return time.Unix(jwtNow, 0) }))
			keyfunc := func(*jwt.Token) (any, error) { return pub, nil }
			b.ReportAllocs()
			b.ResetTimer()
			defer cpuTimer(b)()
			for i := 0; i < b.N; i++ {
				if _, err := p.Parse(tok, keyfunc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJWTRefusals measures refusals that stop before or at the
// signature.
func BenchmarkJWTRefusals(b *testing.B) {
	ctx := context.Background()
	k := jwtTestKeys()
	good := claims("alice", "example.org", jwtNow)
	for _, tt := range []struct {
		name, tok string
		want      Reason
	}{
		{"malformed", "eyJhbGciOiJFZERTQSJ9.bm90IEpTT04.c2ln", Malformed},
		{"unknown_key", signJWT(b, jwt.SigningMethodEdDSA, k.ed, "nope", good), UnknownKey},
		{"algorithm_not_allowed", signJWT(b, jwt.SigningMethodES384, k.ec384, kidEC, good), AlgorithmNotAllowed},
		{"bad_signature/EdDSA", signJWT(b, jwt.SigningMethodEdDSA, k.ed2, kidEd, good), BadSignature},
		{"wrong_jid/EdDSA", signJWT(b, jwt.SigningMethodEdDSA, k.ed, kidEd, claims("bob", "example.org", jwtNow)), WrongJID},
		{"expired/EdDSA", signJWT(b, jwt.SigningMethodEdDSA, k.ed, kidEd, with(claims("alice", "example.org", jwtNow-600), "exp", int64(jwtNow-300))), Expired},
	} {
		b.Run(tt.name, func(b *testing.B) {
			v := jwtBenchVerifier(b, 0)
			b.ReportAllocs()
			b.ResetTimer()
			defer cpuTimer(b)()
			for i := 0; i < b.N; i++ {
				if r := v.Verify(ctx, "alice", "example.org", tt.tok); r.Reason != tt.want {
					b.Fatalf("%s, want %s", r.Reason, tt.want)
				}
			}
		})
	}
}
