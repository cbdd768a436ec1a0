package verifier

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
	"github.com/tokenauthd/tokenauthd/replay"
)

// fakeSource is a KeySource whose set the test sets; Refresh gives next,
// if set, and counts.
type fakeSource struct {
	set       *KeySet
	err       error
	next      *KeySet
	refreshes atomic.Int64
}

func (s *fakeSource) KeySet(context.Context) (*KeySet, error) { return s.set, s.err }

func (s *fakeSource) Refresh(_ context.Context, set *KeySet) *KeySet {
	s.refreshes.Add(1)
	if s.next != nil {
		return s.next
	}
	return set
}

// parsed parses a fetched set for j, or fails the test.
func parsed(t testing.TB, j *JWT, data []byte) *KeySet {
	t.Helper()
	s, err := j.ParseKeySet(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fetchedJWT returns settings as a provider's access tokens need them:
// RS256, the user in preferred_username, keys from src.
func fetchedJWT(src KeySource) *JWT {
	return &JWT{Keys: src, Algorithms: []string{"RS256"}, UserClaim: "preferred_username",
		Issuer: "https://idp.example/oidc", MaxLifetime: time.Hour, Leeway: DefaultJWTLeeway}
}

// newFetchedTest returns a verifier whose host example.org takes its keys
// from src.
func newFetchedTest(t testing.TB, j *JWT) *Verifier {
	t.Helper()
	c := testclock.New(time.Unix(jwtNow, 0))
	p := DefaultParams()
	p.MinReplayTTL = j.ReplayTTL()
	v, err := New(Config{Params: p, Hosts: map[string]Host{"example.org": {JWT: j}},
		Store: replay.NewMemory(replay.MemoryOptions{Capacity: 100, TTL: p.ReplayTTL(), Now: c.Now}), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// accessToken returns the claims of an access token for user as a
// provider issues it.
func accessToken(user string) jwt.MapClaims {
	return jwt.MapClaims{"iss": "https://idp.example/oidc", "aud": "openid", "preferred_username": user,
		"iat": int64(jwtNow), "nbf": int64(jwtNow), "exp": int64(jwtNow + 3600),
		"jti": fmt.Sprintf("at-%d", jtiCounter.Add(1)), "sub": "opaque-id"}
}

// signAT signs an access token with RS256, header typ at+jwt (RFC 9068).
func signAT(t testing.TB, key *rsa.PrivateKey, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"], tok.Header["typ"] = kid, "at+jwt"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A host whose keys come from a source: the source's set verifies, a
// source without a usable set refuses every JWT as keys_unavailable, and
// a kid the set lacks asks the source for a fresh set, once.
func TestJWTKeySource(t *testing.T) {
	k := jwtTestKeys()
	j := fetchedJWT(nil)
	old := parsed(t, j, jwkSet(t, jose.JSONWebKey{Key: k.rsa.Public(), KeyID: "k1", Use: "sig"}))
	rotated := parsed(t, j, jwkSet(t, jose.JSONWebKey{Key: k.rsa.Public(), KeyID: "k1"},
		jose.JSONWebKey{Key: k.rsa2.Public(), KeyID: "k2"}))
	for _, tt := range []struct {
		name      string
		src       *fakeSource
		kid       string
		key       *rsa.PrivateKey
		want      Reason
		refreshes int64
	}{
		// The set in use verifies, with no refresh.
		{"known kid", &fakeSource{set: old}, "k1", k.rsa, Accepted, 0},
		// A new kid: the source's fresh set has it.
		{"rotated", &fakeSource{set: old, next: rotated}, "k2", k.rsa2, Accepted, 1},
		// A new kid the fresh set lacks too (or no fetch allowed now).
		{"unknown kid", &fakeSource{set: old}, "k9", k.rsa2, UnknownKey, 1},
		// A known kid with another key's signature: no refresh.
		{"known kid, other key", &fakeSource{set: old, next: rotated}, "k1", k.rsa2, BadSignature, 0},
		// Never fetched, or stale: refused whatever the JWT.
		{"no set yet", &fakeSource{}, "k1", k.rsa, KeysUnavailable, 0},
		{"stale", &fakeSource{set: old, err: errors.New("the last key set is 25h old")}, "k1", k.rsa, KeysUnavailable, 0},
	} {
		v := newFetchedTest(t, fetchedJWT(tt.src))
		r := v.Verify(context.Background(), "alice", "example.org", signAT(t, tt.key, tt.kid, accessToken("alice")))
		if r.Reason != tt.want || tt.src.refreshes.Load() != tt.refreshes {
			t.Errorf("%s: %s (%v) after %d refreshes, want %s after %d", tt.name, r.Reason, r.Err, tt.src.refreshes.Load(), tt.want, tt.refreshes)
		}
		if tt.want == KeysUnavailable && (r.Err == nil || !strings.Contains(r.Err.Error(), "fetched")) {
			t.Errorf("%s: error %v does not say why", tt.name, r.Err)
		}
	}
}

// Access tokens as providers issue them: typ at+jwt is accepted like JWT,
// once; the user claim is compared after XMPP's case folding; an ID token
// without jti is refused; aud may be a string or an array.
func TestJWTAccessTokens(t *testing.T) {
	k := jwtTestKeys()
	src := &fakeSource{}
	j := fetchedJWT(src)
	src.set = parsed(t, j, jwkSet(t, jose.JSONWebKey{Key: k.rsa.Public(), KeyID: "k1"}))
	j.Audience = "openid"
	v := newFetchedTest(t, j)
	at := func(kv ...any) string { return signAT(t, k.rsa, "k1", with(accessToken("alice"), kv...)) }
	tok := at()
	for _, tt := range []struct {
		name, user, token string
		want              Reason
	}{
		{"at+jwt", "alice", tok, Accepted},
		{"at+jwt again", "alice", tok, Replayed},
		{"another user's", "bob", at(), WrongJID},
		// ejabberd and Prosody pass "Alice" as "alice".
		{"claim in capitals", "alice", at("preferred_username", "Alice"), Accepted},
		{"claim in full-width letters", "alice", at("preferred_username", "ａｌｉｃｅ"), Accepted},
		{"user not folded", "Alice", at(), WrongJID},
		{"claim a JID", "alice", at("preferred_username", "alice@example.org"), WrongJID},
		{"claim empty", "alice", at("preferred_username", ""), WrongJID},
		{"claim missing", "alice", at("preferred_username", nil), WrongJID},
		{"claim with a space", "alice", at("preferred_username", "alice "), WrongJID},
		// An ID token: no jti.
		{"id token", "alice", at("jti", nil, "typ", nil), MissingJTI},
		{"aud array", "alice", at("aud", []string{"account", "openid"}), Accepted},
		{"aud array without it", "alice", at("aud", []string{"account", "profile"}), WrongAudience},
		{"other issuer", "alice", at("iss", "https://idp.example/other"), WrongIssuer},
	} {
		if r := v.Verify(context.Background(), tt.user, "example.org", tt.token); r.Reason != tt.want {
			t.Errorf("%s: %s (%v), want %s", tt.name, r.Reason, r.Err, tt.want)
		}
	}
}

// A fetched set keeps the keys that can verify and leaves out the others,
// saying why; it is refused whole when it holds a private or symmetric
// key, or nothing usable.
func TestParseKeySet(t *testing.T) {
	k := jwtTestKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	j := fetchedJWT(nil)
	sig := jose.JSONWebKey{Key: k.rsa.Public(), KeyID: "sig", Use: "sig", Algorithm: "RS256"}
	many := make([]jose.JSONWebKey, MaxFetchedKeys+1)
	for i := range many {
		many[i] = jose.JSONWebKey{Key: k.rsa.Public(), KeyID: fmt.Sprint(i)}
	}
	for _, tt := range []struct {
		name    string
		set     []byte
		kids    []string
		skipped int
		err     string
	}{
		{"one key", jwkSet(t, sig), []string{"sig"}, 0, ""},
		{"an encryption key beside", jwkSet(t, sig, jose.JSONWebKey{Key: k.rsa2.Public(), KeyID: "enc", Use: "enc"}), []string{"sig"}, 1, ""},
		{"a key of an alg not allowed", jwkSet(t, sig, jose.JSONWebKey{Key: k.ec.Public(), KeyID: "ec"}), []string{"sig"}, 1, ""},
		{"a PS256 key", jwkSet(t, sig, jose.JSONWebKey{Key: k.rsa2.Public(), KeyID: "ps", Algorithm: "PS256"}), []string{"sig"}, 1, ""},
		{"a small RSA key", jwkSet(t, sig, jose.JSONWebKey{Key: small.Public(), KeyID: "small"}), []string{"sig"}, 1, ""},
		{"a key without kid among several", jwkSet(t, sig, jose.JSONWebKey{Key: k.rsa2.Public()}), []string{"sig"}, 1, ""},
		{"only unusable keys", jwkSet(t, jose.JSONWebKey{Key: k.ec.Public(), KeyID: "ec"}), nil, 0, "no key of the JWT key set"},
		{"a private key", jwkSet(t, sig, jose.JSONWebKey{Key: k.rsa2, KeyID: "priv"}), nil, 0, "private key"},
		{"a symmetric key", jwkSet(t, sig, jose.JSONWebKey{Key: k.hmac, KeyID: "hs"}), nil, 0, "symmetric key"},
		{"two keys of one kid", jwkSet(t, sig, sig), nil, 0, "kid used by another key"},
		{"too many keys", jwkSet(t, many...), nil, 0, "at most 64"},
		{"not a set", []byte(`{"keys":{}}`), nil, 0, "not a JWK Set"},
		{"HTML", []byte(`<html>`), nil, 0, "not a JWK Set"},
	} {
		s, err := j.ParseKeySet(tt.set)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.err == "" && (fmt.Sprint(s.Kids()) != fmt.Sprint(tt.kids) || len(s.Skipped()) != tt.skipped):
			t.Errorf("%s: kids %q, skipped %q; want %q and %d skipped", tt.name, s.Kids(), s.Skipped(), tt.kids, tt.skipped)
		}
		if err != nil && strings.Contains(err.Error(), "\"n\"") {
			t.Errorf("%s: the error quotes a key: %v", tt.name, err)
		}
	}
}

// A configured key set stays strict: what a fetched set may leave out is
// an error in a keys_file.
func TestKeySetStrictWhenConfigured(t *testing.T) {
	k := jwtTestKeys()
	j := testJWT(t)
	j.KeySet = jwkSet(t, jose.JSONWebKey{Key: k.ed.Public(), KeyID: "a"}, jose.JSONWebKey{Key: k.rsa.Public(), KeyID: "enc", Use: "enc"})
	if err := j.Validate(); err == nil || !strings.Contains(err.Error(), "use \"enc\"") {
		t.Errorf("a configured set with an encryption key: %v", err)
	}
	var e *Error
	if err := j.Validate(); !errors.As(err, &e) {
		t.Errorf("error %T, want *Error", err)
	}
}

// Settings with a key source validate without keys, and settings with
// both a set and a source, or neither, do not make a verifier.
func TestJWTKeysNeeded(t *testing.T) {
	j := fetchedJWT(nil)
	if err := j.ValidateFetched(); err != nil {
		t.Errorf("ValidateFetched: %v", err)
	}
	if err := j.Validate(); err == nil {
		t.Error("Validate without keys: no error")
	}
	j.Keys, j.KeySet = &fakeSource{}, testSet(t)
	if err := j.Validate(); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("both: %v", err)
	}
	j.UserClaim = "exp"
	j.KeySet = nil
	if err := j.Validate(); err == nil || !strings.Contains(err.Error(), "registered claim") {
		t.Errorf("user claim exp: %v", err)
	}
}
