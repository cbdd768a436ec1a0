package jwks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// BenchmarkFetchedKeys measures, with RS256 (the providers' algorithm), a
// replayed access token's Verify
// (signature, claims, the store's Record) with its keys from a file
// (verifier.JWT.KeySet) and from a Fetcher that fetched them from an
// HTTP server. The fetched path must cost what the file's does: the set
// is read under a lock, no fetch on the way, and the server's count of
// fetches is checked to stay at one.
func BenchmarkFetchedKeys(b *testing.B) {
	key := testKeys()[0]
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Use: "sig"}}})
	if err != nil {
		b.Fatal(err)
	}
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		w.Write(set)
	}))
	defer srv.Close()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": "https://idp.example", "preferred_username": "alice",
		"jti": "j1", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"], tok.Header["typ"] = "k1", "at+jwt"
	signed, err := tok.SignedString(key)
	if err != nil {
		b.Fatal(err)
	}
	file := benchJWT()
	file.KeySet = set
	fetched := benchJWT()
	f, err := New(Spec{URL: srv.URL + "/jwks"}, Options{Parse: fetched.ParseKeySet})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Stop()
	if err := f.FetchOnce(context.Background()); err != nil {
		b.Fatal(err)
	}
	fetched.Keys = f
	for _, c := range []struct {
		name string
		j    *verifier.JWT
	}{{"keys_file", file}, {"keys_url", fetched}} {
		b.Run(c.name, func(b *testing.B) {
			v := benchVerifier(b, c.j)
			ctx := context.Background()
			if r := v.Verify(ctx, "alice", "example.org", signed); !r.OK() {
				b.Fatalf("%s (%v)", r.Reason, r.Err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if r := v.Verify(ctx, "alice", "example.org", signed); r.Reason != verifier.Replayed {
					b.Fatalf("%s (%v)", r.Reason, r.Err)
				}
			}
		})
	}
	// What the fetched path adds: the fetcher's KeySet, alone.
	b.Run("fetcher_keyset", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for range b.N {
			if s, err := f.KeySet(ctx); s == nil || err != nil {
				b.Fatal(err)
			}
		}
	})
	if n := fetches.Load(); n != 1 {
		b.Errorf("%d fetches, want 1: a fetch on the way", n)
	}
}

func benchJWT() *verifier.JWT {
	return &verifier.JWT{Algorithms: []string{"RS256"}, UserClaim: "preferred_username", Issuer: "https://idp.example",
		MaxLifetime: 2 * time.Hour, Leeway: verifier.DefaultJWTLeeway}
}

func benchVerifier(b *testing.B, j *verifier.JWT) *verifier.Verifier {
	p := verifier.DefaultParams()
	p.MinReplayTTL = j.ReplayTTL()
	v, err := verifier.New(verifier.Config{Params: p, Hosts: map[string]verifier.Host{"example.org": {JWT: j}},
		Store: replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: p.ReplayTTL()})})
	if err != nil {
		b.Fatal(fmt.Errorf("verifier: %w", err))
	}
	return v
}
