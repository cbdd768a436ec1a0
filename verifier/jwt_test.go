package verifier

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
	"github.com/tokenauthd/tokenauthd/replay"
)

// jwtNow is the JWT tests' clock, in Unix seconds.
const jwtNow = 1_700_000_000

// testKeys are the JWT tests' keys: made once per test binary (an RSA key
// takes a while), each test's own otherwise.
type testKeys struct {
	ed, ed2     ed25519.PrivateKey
	ec, ecOld   *ecdsa.PrivateKey // P-256
	ec384       *ecdsa.PrivateKey
	rsa, rsa2   *rsa.PrivateKey
	hmac, hmac2 []byte
}

var jwtTestKeys = sync.OnceValue(func() *testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	k := &testKeys{}
	var err error
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	_, k.ed2, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ecOld, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.hmac, k.hmac2 = make([]byte, 32), make([]byte, 64)
	rand.Read(k.hmac)
	rand.Read(k.hmac2)
	return k
})

// jwkSet returns the JWK Set of the given keys (public keys, or []byte).
func jwkSet(t testing.TB, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The kids of the tests' key set.
const (
	kidEd, kidEC, kidRSA, kidRSA2, kidHS = "ed-2024", "ec-2024", "rsa-2024", "rsa-2025", "hs-2024"
)

// testSet is the key set of example.org in the JWT tests: every kind of
// key, each named.
func testSet(t testing.TB) []byte {
	k := jwtTestKeys()
	return jwkSet(t,
		jose.JSONWebKey{Key: k.ed.Public(), KeyID: kidEd},
		jose.JSONWebKey{Key: k.ec.Public(), KeyID: kidEC},
		jose.JSONWebKey{Key: k.rsa.Public(), KeyID: kidRSA},
		jose.JSONWebKey{Key: k.rsa2.Public(), KeyID: kidRSA2, Algorithm: "PS256"},
		jose.JSONWebKey{Key: k.hmac, KeyID: kidHS},
	)
}

// testJWT returns example.org's JWT settings in the tests.
func testJWT(t testing.TB) *JWT {
	return &JWT{
		KeySet:      testSet(t),
		Algorithms:  []string{"EdDSA", "ES256", "RS256", "PS256", "HS256"},
		JIDClaim:    DefaultJIDClaim,
		MaxLifetime: DefaultJWTMaxLifetime,
		Leeway:      DefaultJWTLeeway,
	}
}

// newJWTTest returns a verifier with clock at jwtNow for:
//   - example.org: tokens (RFC seed, secretA) and JWTs (j);
//   - example.net: tokens only (seedB, secretB);
//   - jwt.example: JWTs only, one Ed25519 key without kid.
func newJWTTest(t testing.TB, j *JWT) (*Verifier, *testclock.Clock) {
	t.Helper()
	c := testclock.New(time.Unix(jwtNow, 0))
	only := &JWT{KeySet: jwkSet(t, jose.JSONWebKey{Key: jwtTestKeys().ed.Public()}),
		Algorithms: []string{"EdDSA"}, JIDClaim: "jid", MaxLifetime: time.Minute, Leeway: 0}
	p := DefaultParams()
	p.MinReplayTTL = max(j.ReplayTTL(), only.ReplayTTL())
	v, err := New(Config{
		Params: p,
		Hosts: map[string]Host{
			"example.org": {TokenSecrets: [][]byte{[]byte(secretA)}, OTPSeeds: []string{rfcSeed}, IsUser: true, JWT: j},
			"example.net": {TokenSecrets: [][]byte{[]byte(secretB)}, OTPSeeds: []string{seedB}},
			"jwt.example": {JWT: only, IsUser: true},
		},
		Store: replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: p.ReplayTTL(), Now: c.Now}),
		Now:   c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v, c
}

var jtiCounter atomic.Int64

// claims returns the claims of a good JWT for user@host issued at unix
// time at: iat at, exp a minute later, a jti of its own.
func claims(user, host string, at int64) jwt.MapClaims {
	return jwt.MapClaims{
		"jid": user + "@" + host,
		"iat": at,
		"exp": at + 60,
		"jti": fmt.Sprintf("jti-%d", jtiCounter.Add(1)),
	}
}

// signJWT signs claims with golang-jwt, kid in the header if not empty.
func signJWT(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// with returns c with the given claims set, or deleted where the value is
// nil.
func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

// b64 is base64url without padding, as in JWTs.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// hs256 makes a JWT by hand: the header and payload as given, the HS256
// signature with key. It is how the tests make what golang-jwt refuses to
// sign (alg none, an RSA key used as an HMAC secret).
func hs256(header, payload string, key []byte) string {
	in := b64(header) + "." + b64(payload)
	return in + "." + base64.RawURLEncoding.EncodeToString(hmacSHA256(key, in))
}

func hmacSHA256(key []byte, msg string) []byte {
	// HMAC-SHA256 from its definition (RFC 2104), not crypto/hmac: what
	// an attacker computes.
	const block = 64
	if len(key) > block {
		s := sha256.Sum256(key)
		key = s[:]
	}
	k := make([]byte, block)
	copy(k, key)
	in, out := sha256.New(), sha256.New()
	for i := range k {
		in.Write([]byte{k[i] ^ 0x36})
		out.Write([]byte{k[i] ^ 0x5c})
	}
	in.Write([]byte(msg))
	out.Write(in.Sum(nil))
	return out.Sum(nil)
}

// Every refusal of a JWT has its reason, and a good JWT is accepted once.
func TestJWTReasons(t *testing.T) {
	k := jwtTestKeys()
	const now = jwtNow
	ed, es, rs, ps, hs := jwt.SigningMethodEdDSA, jwt.SigningMethodES256, jwt.SigningMethodRS256, jwt.SigningMethodPS256, jwt.SigningMethodHS256
	good := func() jwt.MapClaims { return claims("alice", "example.org", now) }
	v, _ := newJWTTest(t, testJWT(t))
	edTok := signJWT(t, ed, k.ed, kidEd, good())
	// The same (iss, jti) in another JWT: a replay, though the bytes differ.
	sameJTI := good()
	sameJTIOther := with(good(), "jti", sameJTI["jti"], "exp", int64(now+30))
	issJTI := with(good(), "iss", "app-a")
	issJTIOther := with(good(), "iss", "app-b", "jti", issJTI["jti"])
	// A tampered payload: alice's signature over bob's claims.
	aliceTok := signJWT(t, ed, k.ed, kidEd, good())
	parts := strings.Split(aliceTok, ".")
	bobPayload, _ := json.Marshal(claims("bob", "example.org", now))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bobPayload) + "." + parts[2]
	// The same signature spelled otherwise: its last character's unused
	// low bits set. Only strict base64url decoding refuses it.
	loose := signJWT(t, ed, k.ed, kidEd, good())
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, loose[len(loose)-1])
	loose = loose[:len(loose)-1] + string(alphabet[last|1])
	if last|1 == last {
		t.Fatalf("an Ed25519 signature's last base64url character %q has its low bit set", loose[len(loose)-1])
	}

	tests := []struct {
		name, user, host, jwt string
		want                  Reason
		kid                   string // KeyID of the result
	}{
		{"EdDSA", "alice", "example.org", edTok, Accepted, kidEd},
		{"EdDSA again", "alice", "example.org", edTok, Replayed, kidEd},
		{"ES256", "alice", "example.org", signJWT(t, es, k.ec, kidEC, good()), Accepted, kidEC},
		{"RS256", "alice", "example.org", signJWT(t, rs, k.rsa, kidRSA, good()), Accepted, kidRSA},
		{"PS256", "alice", "example.org", signJWT(t, ps, k.rsa2, kidRSA2, good()), Accepted, kidRSA2},
		{"PS256 with an RSA key of no alg", "alice", "example.org", signJWT(t, ps, k.rsa, kidRSA, good()), Accepted, kidRSA},
		{"HS256", "alice", "example.org", signJWT(t, hs, k.hmac, kidHS, good()), Accepted, kidHS},
		{"same jti", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, sameJTI), Accepted, kidEd},
		{"same jti, other JWT", "alice", "example.org", signJWT(t, es, k.ec, kidEC, sameJTIOther), Replayed, kidEC},
		{"iss a", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, issJTI), Accepted, kidEd},
		{"same jti, iss b", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, issJTIOther), Accepted, kidEd},
		{"no iat", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "iat", nil)), Accepted, kidEd},
		{"nbf now", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "nbf", int64(now))), Accepted, kidEd},
		{"string aud", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "aud", "x")), Accepted, kidEd},
		{"fractional times", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "iat", now+0.5, "exp", now+60.5)), Accepted, kidEd},

		{"bad_signature: tampered", "bob", "example.org", tampered, BadSignature, kidEd},
		{"bad_signature: another Ed25519 key", "alice", "example.org", signJWT(t, ed, k.ed2, kidEd, good()), BadSignature, kidEd},
		{"bad_signature: another RSA key", "alice", "example.org", signJWT(t, rs, k.rsa2, kidRSA, good()), BadSignature, kidRSA},
		{"bad_signature: another HMAC key", "alice", "example.org", signJWT(t, hs, k.hmac2, kidHS, good()), BadSignature, kidHS},
		{"bad_signature: another JWT's signature", "alice", "example.org", parts[0] + "." + parts[1] + "." + strings.Split(edTok, ".")[2], BadSignature, kidEd},

		{"expired", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "iat", int64(now-100), "exp", int64(now-31))), Expired, kidEd},
		{"expired, leeway's end", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "iat", int64(now-100), "exp", int64(now-30))), Expired, kidEd},
		{"expired within the leeway", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "iat", int64(now-100), "exp", int64(now-29))), Accepted, kidEd},
		{"not_yet_valid: nbf", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "nbf", int64(now+31))), NotYetValid, kidEd},
		{"nbf within the leeway", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "nbf", int64(now+30))), Accepted, kidEd},
		{"not_yet_valid: iat", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, claims("alice", "example.org", now+31)), NotYetValid, kidEd},
		{"iat within the leeway", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, claims("alice", "example.org", now+30)), Accepted, kidEd},

		{"lifetime_too_long", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "exp", int64(now+301))), LifetimeTooLong, kidEd},
		{"lifetime at most", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "exp", int64(now+300))), Accepted, kidEd},
		{"lifetime_too_long: no iat", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "iat", nil, "exp", int64(now+331))), LifetimeTooLong, kidEd},
		{"no iat, lifetime at most", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "iat", nil, "exp", int64(now+330))), Accepted, kidEd},
		{"lifetime_too_long: no exp", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "exp", nil)), LifetimeTooLong, kidEd},
		{"lifetime_too_long: iat long ago", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "iat", int64(now-3600), "exp", int64(now+60))), LifetimeTooLong, kidEd},

		{"missing_jti", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "jti", nil)), MissingJTI, kidEd},
		{"missing_jti: empty", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "jti", "")), MissingJTI, kidEd},

		{"wrong_jid: another user", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, claims("bob", "example.org", now)), WrongJID, kidEd},
		{"wrong_jid: another host", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, claims("alice", "example.net", now)), WrongJID, kidEd},
		{"wrong_jid: case", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, claims("Alice", "example.org", now)), WrongJID, kidEd},
		{"wrong_jid: a resource", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "jid", "alice@example.org/phone")), WrongJID, kidEd},
		{"wrong_jid: a bare host", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "jid", "example.org")), WrongJID, kidEd},
		{"wrong_jid: none", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "jid", nil)), WrongJID, kidEd},
		{"wrong_jid: in sub", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "jid", nil, "sub", "alice@example.org")), WrongJID, kidEd},
		{"wrong_jid: user with @", "alice@example.org", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "jid", "alice@example.org@example.org")), Malformed, ""},

		{"unknown_key", "alice", "example.org", signJWT(t, ed, k.ed, "ed-2023", good()), UnknownKey, ""},
		{"unknown_key: no kid, several keys", "alice", "example.org", signJWT(t, ed, k.ed, "", good()), UnknownKey, ""},
		{"unknown_key: kid of another case", "alice", "example.org", signJWT(t, ed, k.ed, strings.ToUpper(kidEd), good()), UnknownKey, ""},
		{"unknown_key: a number as kid", "alice", "example.org", hs256(`{"alg":"HS256","kid":1}`, `{}`, k.hmac), UnknownKey, ""},

		{"algorithm_not_allowed: ES384", "alice", "example.org", signJWT(t, jwt.SigningMethodES384, k.ec384, kidEC, good()), AlgorithmNotAllowed, ""},
		{"algorithm_not_allowed: ES256 with the Ed25519 key's kid", "alice", "example.org", signJWT(t, es, k.ec, kidEd, good()), AlgorithmNotAllowed, ""},
		{"algorithm_not_allowed: RS256 with a PS256 key", "alice", "example.org", signJWT(t, rs, k.rsa2, kidRSA2, good()), AlgorithmNotAllowed, ""},
		{"algorithm_not_allowed: HS256 with the EC key's kid", "alice", "example.org", signJWT(t, hs, k.hmac, kidEC, good()), AlgorithmNotAllowed, ""},
		{"algorithm_not_allowed: an alg no one knows", "alice", "example.org", hs256(`{"alg":"HS1","kid":"hs-2024"}`, `{}`, k.hmac), AlgorithmNotAllowed, ""},

		{"wrong host for a JWT: tokens only", "alice", "example.net", edTok, Malformed, ""},
		{"unknown_host", "alice", "example.com", edTok, UnknownHost, ""},

		{"malformed: not base64url", "alice", "example.org", "a.b.c", Malformed, ""},
		{"malformed: payload not JSON", "alice", "example.org", b64(`{"alg":"EdDSA"}`) + "." + b64("alice") + ".c2ln", Malformed, ""},
		{"malformed: header not JSON", "alice", "example.org", b64(`{alg}`) + "." + b64(`{}`) + ".c2ln", Malformed, ""},
		{"malformed: jid not a string", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "jid", 42)), Malformed, ""},
		{"malformed: exp a string", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "exp", "soon")), Malformed, ""},
		{"malformed: no alg", "alice", "example.org", b64(`{"kid":"ed-2024"}`) + "." + b64(`{}`) + ".c2ln", Malformed, ""},
		{"malformed: crit", "alice", "example.org", hs256(`{"alg":"HS256","kid":"hs-2024","crit":["exp"]}`, `{}`, k.hmac), Malformed, ""},
		{"malformed: padded", "alice", "example.org", strings.Replace(edTok, ".", "=.", 1), Malformed, ""},
		{"malformed: 4 segments", "alice", "example.org", edTok + ".x", Malformed, ""},
		{"malformed: too long", "alice", "example.org", strings.Repeat("a", MaxJWTSize) + ".b.c", Malformed, ""},
		{"malformed: too long, signed", "alice", "example.org", signJWT(t, ed, k.ed, kidEd, with(good(), "pad", strings.Repeat("x", MaxJWTSize))), Malformed, ""},
		{"malformed: signature not in canonical base64url", "alice", "example.org", loose, Malformed, ""},
	}
	for _, tt := range tests {
		r := v.Verify(context.Background(), tt.user, tt.host, tt.jwt)
		if r.Reason != tt.want {
			t.Errorf("%s: %s (%v), want %s", tt.name, r.Reason, r.Err, tt.want)
			continue
		}
		if r.OK() != (tt.want == Accepted) || r.JWT != (IsCompactJWS(tt.jwt) && validUser(tt.user)) {
			t.Errorf("%s: %+v: OK() or JWT wrong", tt.name, r)
		}
		if r.KeyID != tt.kid {
			t.Errorf("%s: KeyID %q, want %q", tt.name, r.KeyID, tt.kid)
		}
		switch tt.want {
		case Accepted, Replayed, BadSignature, UnknownHost:
		default:
			if r.Err == nil {
				t.Errorf("%s: %s without an error saying why", tt.name, r.Reason)
			}
		}
		if r.Err != nil && strings.Contains(r.Err.Error(), tt.jwt[:min(len(tt.jwt), 20)]) {
			t.Errorf("%s: error %q quotes the JWT", tt.name, r.Err)
		}
	}
}

// The alg confusion attack: an HS256 JWT whose HMAC key is the RSA public
// key a verifier holds, PEM or DER, with or without the RSA key's kid. It
// is refused whether HS256 is allowed or not.
func TestJWTAlgConfusion(t *testing.T) {
	k := jwtTestKeys()
	der, err := x509.MarshalPKIXPublicKey(k.rsa.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkKey, _ := json.Marshal(jose.JSONWebKey{Key: k.rsa.Public(), KeyID: kidRSA})
	payload, _ := json.Marshal(claims("alice", "example.org", jwtNow))
	rsaOnly := &JWT{KeySet: jwkSet(t, jose.JSONWebKey{Key: k.rsa.Public(), KeyID: kidRSA}),
		Algorithms: []string{"RS256"}, JIDClaim: "jid", MaxLifetime: time.Minute}
	rsaOnlyNoKid := &JWT{KeySet: jwkSet(t, jose.JSONWebKey{Key: k.rsa.Public()}),
		Algorithms: []string{"RS256"}, JIDClaim: "jid", MaxLifetime: time.Minute}
	for _, j := range []*JWT{testJWT(t), rsaOnly, rsaOnlyNoKid} {
		v, _ := newJWTTest(t, j)
		for _, secret := range [][]byte{pemKey, der, jwkKey, k.rsa.N.Bytes()} {
			for _, header := range []string{`{"alg":"HS256","kid":"rsa-2024"}`, `{"alg":"HS256"}`, `{"alg":"HS256","typ":"JWT","kid":"rsa-2024"}`} {
				r := v.Verify(context.Background(), "alice", "example.org", hs256(header, string(payload), secret))
				if r.OK() || (r.Reason != AlgorithmNotAllowed && r.Reason != UnknownKey) {
					t.Errorf("HS256 with the RSA public key as secret (%s, %d-byte secret, algorithms %v): %s, want algorithm_not_allowed",
						header, len(secret), j.Algorithms, r.Reason)
				}
			}
		}
	}
}

// A JWT with alg none is refused, whatever its signature part, as is one
// that names "none" in another spelling.
func TestJWTNone(t *testing.T) {
	v, _ := newJWTTest(t, testJWT(t))
	payload, _ := json.Marshal(claims("alice", "example.org", jwtNow))
	for _, header := range []string{`{"alg":"none"}`, `{"alg":"none","kid":"ed-2024"}`, `{"alg":"None","kid":"hs-2024"}`, `{"alg":"NONE"}`} {
		for _, sig := range []string{"", "c2ln"} {
			tok := b64(header) + "." + b64(string(payload)) + "." + sig
			if !IsCompactJWS(tok) {
				t.Fatalf("%q is not taken for a JWS", tok)
			}
			for _, host := range []string{"example.org", "jwt.example"} {
				r := v.Verify(context.Background(), "alice", host, tok)
				if r.OK() || r.Reason != AlgorithmNotAllowed {
					t.Errorf("%s with signature %q at %s: %s, want algorithm_not_allowed", header, sig, host, r.Reason)
				}
			}
		}
	}
	// Nor can it be allowed.
	j := testJWT(t)
	j.Algorithms = append(j.Algorithms, "none")
	if err := j.Validate(); err == nil || !strings.Contains(err.Error(), "never allowed") {
		t.Errorf("algorithms with none: %v", err)
	}
}

// Key rotation: the set holds the old key and the new one, and JWTs of
// either are accepted, each by its kid; once the old key is dropped from
// the set, its JWTs are unknown_key.
func TestJWTRotation(t *testing.T) {
	k := jwtTestKeys()
	both := &JWT{KeySet: jwkSet(t, jose.JSONWebKey{Key: k.ecOld.Public(), KeyID: "2024"}, jose.JSONWebKey{Key: k.ec.Public(), KeyID: "2025"}),
		Algorithms: []string{"ES256"}, JIDClaim: "jid", MaxLifetime: time.Minute}
	newOnly := &JWT{KeySet: jwkSet(t, jose.JSONWebKey{Key: k.ec.Public(), KeyID: "2025"}),
		Algorithms: []string{"ES256"}, JIDClaim: "jid", MaxLifetime: time.Minute}
	es := jwt.SigningMethodES256
	v, _ := newJWTTest(t, both)
	after, _ := newJWTTest(t, newOnly)
	for _, tt := range []struct {
		key                *ecdsa.PrivateKey
		kid                string
		during, afterwards Reason
	}{
		{k.ecOld, "2024", Accepted, UnknownKey},
		{k.ec, "2025", Accepted, Accepted},
		{k.ecOld, "2025", BadSignature, BadSignature}, // the old key under the new kid
		{k.ec, "2024", BadSignature, UnknownKey},
		{k.ec, "", UnknownKey, Accepted}, // without kid: only a set of one key
	} {
		c := claims("alice", "example.org", jwtNow)
		tok := signJWT(t, es, tt.key, tt.kid, c)
		if r := v.Verify(context.Background(), "alice", "example.org", tok); r.Reason != tt.during {
			t.Errorf("kid %q during the rotation: %s, want %s", tt.kid, r.Reason, tt.during)
		}
		tok = signJWT(t, es, tt.key, tt.kid, claims("alice", "example.org", jwtNow))
		if r := after.Verify(context.Background(), "alice", "example.org", tok); r.Reason != tt.afterwards {
			t.Errorf("kid %q after the rotation: %s, want %s", tt.kid, r.Reason, tt.afterwards)
		}
	}
}

// A set of one key takes JWTs without kid, and with the key's kid, but
// not with another kid; a key without kid is named by no kid at all.
func TestJWTKeySelection(t *testing.T) {
	k := jwtTestKeys()
	ed := jwt.SigningMethodEdDSA
	named := &JWT{KeySet: jwkSet(t, jose.JSONWebKey{Key: k.ed.Public(), KeyID: "only"}),
		Algorithms: []string{"EdDSA"}, JIDClaim: "jid", MaxLifetime: time.Minute}
	v, _ := newJWTTest(t, named)
	for _, tt := range []struct {
		host, kid string
		want      Reason
	}{
		{"example.org", "", Accepted},
		{"example.org", "only", Accepted},
		{"example.org", "other", UnknownKey},
		{"jwt.example", "", Accepted}, // its key has no kid
		{"jwt.example", "x", UnknownKey},
	} {
		tok := signJWT(t, ed, k.ed, tt.kid, claims("alice", tt.host, jwtNow))
		if r := v.Verify(context.Background(), "alice", tt.host, tok); r.Reason != tt.want {
			t.Errorf("%s, kid %q: %s, want %s", tt.host, tt.kid, r.Reason, tt.want)
		}
	}
	// An empty kid names a key whose kid is empty, in a set of one.
	empty := &JWT{KeySet: jwkSet(t, jose.JSONWebKey{Key: k.ed.Public()}), Algorithms: []string{"EdDSA"}, JIDClaim: "jid", MaxLifetime: time.Minute}
	empty.KeySet = []byte(strings.Replace(string(empty.KeySet), `"kty"`, `"kid":"","kty"`, 1))
	v, _ = newJWTTest(t, empty)
	tok := signJWTHeader(t, k.ed, `{"alg":"EdDSA","kid":""}`, claims("alice", "example.org", jwtNow))
	if r := v.Verify(context.Background(), "alice", "example.org", tok); r.Reason != Accepted {
		t.Errorf("empty kid, key of empty kid: %s (%v)", r.Reason, r.Err)
	}
}

// signJWTHeader signs claims with an Ed25519 key under the header as given.
func signJWTHeader(t testing.TB, key ed25519.PrivateKey, header string, c jwt.MapClaims) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	in := b64(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(in)))
}

// Issuer and audience, when configured, are required and checked.
func TestJWTIssuerAudience(t *testing.T) {
	k := jwtTestKeys()
	j := testJWT(t)
	j.Issuer, j.Audience = "https://app.example", "xmpp"
	v, _ := newJWTTest(t, j)
	ed := jwt.SigningMethodEdDSA
	good := func() jwt.MapClaims {
		return with(claims("alice", "example.org", jwtNow), "iss", "https://app.example", "aud", "xmpp")
	}
	for _, tt := range []struct {
		name string
		c    jwt.MapClaims
		want Reason
	}{
		{"both", good(), Accepted},
		{"aud among others", with(good(), "aud", []string{"web", "xmpp"}), Accepted},
		{"no iss", with(good(), "iss", nil), WrongIssuer},
		{"another iss", with(good(), "iss", "https://evil.example"), WrongIssuer},
		{"iss of another case", with(good(), "iss", "https://APP.example"), WrongIssuer},
		{"no aud", with(good(), "aud", nil), WrongAudience},
		{"another aud", with(good(), "aud", "web"), WrongAudience},
		{"other auds", with(good(), "aud", []string{"web", "mail"}), WrongAudience},
		{"expired beats the issuer", with(good(), "iss", "x", "iat", int64(jwtNow-100), "exp", int64(jwtNow-50)), Expired},
	} {
		if r := v.Verify(context.Background(), "alice", "example.org", signJWT(t, ed, k.ed, kidEd, tt.c)); r.Reason != tt.want {
			t.Errorf("%s: %s (%v), want %s", tt.name, r.Reason, r.Err, tt.want)
		}
	}
}

// The JID claim is the one configured: "sub", or any other name.
func TestJWTJIDClaim(t *testing.T) {
	k := jwtTestKeys()
	ed := jwt.SigningMethodEdDSA
	for _, name := range []string{"sub", "xmpp_jid", "jid", "https://example.org/jid", "jid ü", "Jid"} {
		j := testJWT(t)
		j.JIDClaim = name
		v, _ := newJWTTest(t, j)
		c := with(claims("alice", "example.org", jwtNow), "jid", nil, name, "alice@example.org")
		if r := v.Verify(context.Background(), "alice", "example.org", signJWT(t, ed, k.ed, kidEd, c)); r.Reason != Accepted {
			t.Errorf("claim %q: %s (%v)", name, r.Reason, r.Err)
		}
		c = with(claims("alice", "example.org", jwtNow), "jid", nil, name, "bob@example.org")
		if !strings.EqualFold(name, "jid") {
			c["jid"] = "alice@example.org" // the default claim is not read
		}
		if r := v.Verify(context.Background(), "alice", "example.org", signJWT(t, ed, k.ed, kidEd, c)); r.Reason != WrongJID {
			t.Errorf("claim %q naming bob: %s, want wrong_jid", name, r.Reason)
		}
	}
}

// Leeway edges at zero leeway: exp must be after now, nbf and iat at most
// now, and the lifetime without iat no more than the max.
func TestJWTZeroLeeway(t *testing.T) {
	k := jwtTestKeys()
	j := testJWT(t)
	j.Leeway = 0
	v, _ := newJWTTest(t, j)
	ed := jwt.SigningMethodEdDSA
	good := func() jwt.MapClaims { return claims("alice", "example.org", jwtNow-10) }
	for _, tt := range []struct {
		name string
		c    jwt.MapClaims
		want Reason
	}{
		{"exp now", with(good(), "exp", int64(jwtNow)), Expired},
		{"exp in a second", with(good(), "exp", int64(jwtNow+1)), Accepted},
		{"exp half a second ago", with(good(), "exp", jwtNow-0.5), Expired},
		{"nbf now", with(good(), "nbf", int64(jwtNow)), Accepted},
		{"nbf in a second", with(good(), "nbf", int64(jwtNow+1)), NotYetValid},
		{"iat now", claims("alice", "example.org", jwtNow), Accepted},
		{"iat in a second", claims("alice", "example.org", jwtNow+1), NotYetValid},
		{"no iat, exp at the max", with(good(), "iat", nil, "exp", int64(jwtNow+300)), Accepted},
		{"no iat, exp past the max", with(good(), "iat", nil, "exp", int64(jwtNow+301)), LifetimeTooLong},
	} {
		if r := v.Verify(context.Background(), "alice", "example.org", signJWT(t, ed, k.ed, kidEd, tt.c)); r.Reason != tt.want {
			t.Errorf("%s: %s (%v), want %s", tt.name, r.Reason, r.Err, tt.want)
		}
	}
}

// A JWT accepted is refused as a replay until its exp plus the leeway, and
// for that long the store keeps it: the verifier asks for a replay TTL
// that covers it.
func TestJWTReplayUntilExpiry(t *testing.T) {
	k := jwtTestKeys()
	v, c := newJWTTest(t, testJWT(t))
	// The longest a JWT may live: iat in the leeway's future, exp the max
	// lifetime after.
	cl := with(claims("alice", "example.org", jwtNow+30), "exp", int64(jwtNow+30+300))
	tok := signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, cl)
	if r := v.Verify(context.Background(), "alice", "example.org", tok); !r.OK() {
		t.Fatalf("%+v", r)
	}
	for _, at := range []int64{jwtNow + 1, jwtNow + 200, jwtNow + 359} {
		c.Set(time.Unix(at, 0))
		if r := v.Verify(context.Background(), "alice", "example.org", tok); r.Reason != Replayed {
			t.Errorf("at now%+d: %s, want replayed", at-jwtNow, r.Reason)
		}
	}
	c.Set(time.Unix(jwtNow+360, 0)) // exp + leeway
	if r := v.Verify(context.Background(), "alice", "example.org", tok); r.Reason != Expired {
		t.Errorf("at exp + leeway: %s, want expired", r.Reason)
	}
	// Records outlive exp + leeway: by the largest leeway a later
	// configuration may allow (TestAttackJWTReplayAfterLeewayRaised).
	if got, want := testJWT(t).ReplayTTL(), 300*time.Second+30*time.Second+MaxJWTLeeway; got != want {
		t.Errorf("ReplayTTL = %v, want %v", got, want)
	}
}

// New refuses a JWT host whose JWTs would outlive the replay store's
// records: Params.MinReplayTTL must cover them.
func TestJWTNeedsReplayTTL(t *testing.T) {
	st := replay.NewMemory(replay.MemoryOptions{Capacity: 10, TTL: time.Minute})
	p := DefaultParams()
	hosts := map[string]Host{"h": {JWT: testJWT(t)}}
	_, err := New(Config{Params: p, Hosts: hosts, Store: st})
	if err == nil || !strings.Contains(err.Error(), "MinReplayTTL") {
		t.Errorf("a JWT host with the tokens' replay TTL: %v, want an error", err)
	}
	need := testJWT(t).ReplayTTL()
	p.MinReplayTTL = need - time.Second
	if _, err := New(Config{Params: p, Hosts: hosts, Store: st}); err == nil {
		t.Error("MinReplayTTL a second short: no error")
	}
	p.MinReplayTTL = need
	if _, err := New(Config{Params: p, Hosts: hosts, Store: st}); err != nil {
		t.Errorf("MinReplayTTL enough: %v", err)
	}
	if p.ReplayTTL() != need {
		t.Errorf("ReplayTTL() = %v, want MinReplayTTL", p.ReplayTTL())
	}
	p.MinReplayTTL = time.Second
	if p.ReplayTTL() != 120*time.Second {
		t.Errorf("ReplayTTL() with a short MinReplayTTL = %v, want the tokens' 2m", p.ReplayTTL())
	}
	p.MinReplayTTL = -1
	if p.Validate() == nil {
		t.Error("negative MinReplayTTL: valid")
	}
}

// A host of JWTs only refuses anything else as malformed, and a host of
// tokens only refuses JWTs the same way; a host of both takes both.
func TestJWTHostKinds(t *testing.T) {
	k := jwtTestKeys()
	v, _ := newJWTTest(t, testJWT(t))
	ctx := context.Background()
	tok := tokenAt(t, v, "alice", jwtNow, nonce32)
	netTok, err := v.Mint("alice", "example.net", time.Unix(jwtNow, 0), nonce32)
	if err != nil {
		t.Fatal(err)
	}
	onlyJWT := signJWT(t, jwt.SigningMethodEdDSA, k.ed, "", claims("alice", "jwt.example", jwtNow))
	for _, tt := range []struct {
		name, host, password string
		want                 Reason
		jwt                  bool
	}{
		{"token, both", "example.org", tok, Accepted, false},
		{"JWT, both", "example.org", signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, claims("alice", "example.org", jwtNow)), Accepted, true},
		{"token, tokens only", "example.net", netTok, Accepted, false},
		{"JWT, tokens only", "example.net", signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, claims("alice", "example.net", jwtNow)), Malformed, true},
		{"JWT, JWTs only", "jwt.example", onlyJWT, Accepted, true},
		{"token, JWTs only", "jwt.example", Sign([]byte(secretA), tok[:8], "1", "alice", "jwt.example"), Malformed, false},
		{"garbage, JWTs only", "jwt.example", "hunter2", Malformed, false},
		{"garbage, unknown host", "example.com", "hunter2", Malformed, false},
	} {
		for _, f := range []func(context.Context, string, string, string) Result{v.Explain, v.Check, v.Verify} {
			if r := f(ctx, "alice", tt.host, tt.password); r.Reason != tt.want || r.JWT != tt.jwt {
				t.Errorf("%s: %s (JWT %v, %v), want %s (JWT %v)", tt.name, r.Reason, r.JWT, r.Err, tt.want, tt.jwt)
			}
		}
	}
	if _, err := v.Mint("alice", "jwt.example", time.Unix(jwtNow, 0), ""); err == nil {
		t.Error("Mint of a token for a host of JWTs only: no error")
	}
	if !v.IsUser("alice", "jwt.example") {
		t.Error("IsUser on a host of JWTs only: false")
	}
}

// Check and Explain give a JWT's verdict without recording it.
func TestJWTCheckExplain(t *testing.T) {
	k := jwtTestKeys()
	v, _ := newJWTTest(t, testJWT(t))
	ctx := context.Background()
	tok := signJWT(t, jwt.SigningMethodES256, k.ec, kidEC, claims("alice", "example.org", jwtNow))
	for i := 0; i < 2; i++ {
		for _, f := range []func(context.Context, string, string, string) Result{v.Check, v.Explain} {
			if r := f(ctx, "alice", "example.org", tok); !r.OK() || !r.JWT || r.KeyID != kidEC || r.Seed != -1 || r.Secret != -1 {
				t.Fatalf("before Verify: %+v", r)
			}
		}
	}
	if r := v.Verify(ctx, "alice", "example.org", tok); !r.OK() {
		t.Fatalf("Verify after Check and Explain: %+v", r)
	}
	for _, f := range []func(context.Context, string, string, string) Result{v.Check, v.Explain, v.Verify} {
		if r := f(ctx, "alice", "example.org", tok); r.Reason != Replayed {
			t.Errorf("after Verify: %s, want replayed", r.Reason)
		}
	}
	exp := signJWT(t, jwt.SigningMethodES256, k.ec, kidEC, with(claims("alice", "example.org", jwtNow-120), "exp", int64(jwtNow-60)))
	if r := v.Explain(ctx, "alice", "example.org", exp); r.Reason != Expired || !strings.Contains(Detail(r.Err), "expired at 2023-11-14T22:12:20Z") {
		t.Errorf("Explain of an expired JWT: %s, %v", r.Reason, r.Err)
	}
}

// A store that may have lost records refuses the JWTs it cannot vouch
// for: issued (iat, or exp - max lifetime) up to the loss plus the leeway.
// Verify and Check agree; a loss found while recording refuses too.
func TestJWTStoreForgot(t *testing.T) {
	k := jwtTestKeys()
	const forgot = jwtNow - 100
	issued := func(at int64) jwt.MapClaims {
		return with(claims("alice", "example.org", at), "exp", int64(jwtNow+60))
	}
	for _, tt := range []struct {
		name     string
		c        jwt.MapClaims
		onRecord bool
		want     Reason
	}{
		{"issued before", issued(forgot - 10), false, StoreForgot},
		{"issued at", issued(forgot), false, StoreForgot},
		{"issued within the leeway after", issued(forgot + 30), false, StoreForgot},
		{"issued after the leeway", issued(forgot + 31), false, Accepted},
		{"issued now", claims("alice", "example.org", jwtNow), false, Accepted},
		{"issued now, found while recording", claims("alice", "example.org", jwtNow), true, Accepted},
		{"issued at, found while recording", issued(forgot), true, StoreForgot},
		// Without iat: exp - 300 s is when it could have been issued.
		{"no iat, exp - max at the leeway's end", with(claims("alice", "example.org", 0), "iat", nil, "exp", int64(forgot+30+300)), false, StoreForgot},
		{"no iat, exp - max after it", with(claims("alice", "example.org", 0), "iat", nil, "exp", int64(forgot+31+300)), false, Accepted},
	} {
		v, _ := newJWTTest(t, testJWT(t))
		s := &forgettingStore{Memory: v.store.(*replay.Memory), at: time.Unix(forgot, 0), onRecord: tt.onRecord}
		v.store = s
		tok := signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, tt.c)
		checked := v.Check(context.Background(), "alice", "example.org", tok)
		r := v.Verify(context.Background(), "alice", "example.org", tok)
		if r.Reason != tt.want {
			t.Errorf("%s: Verify %s (%v), want %s", tt.name, r.Reason, r.Err, tt.want)
		}
		if wantCheck := map[bool]Reason{true: Accepted, false: tt.want}[tt.onRecord]; checked.Reason != wantCheck {
			t.Errorf("%s: Check %s, want %s", tt.name, checked.Reason, wantCheck)
		}
		var fe *ForgotError
		if tt.want == StoreForgot && (!errors.As(r.Err, &fe) || !fe.At.Equal(s.at) || fe.Until.Unix() != forgot+31 || !r.Forgot.Equal(s.at)) {
			t.Errorf("%s: Err %#v, want a *ForgotError at %v until %d", tt.name, r.Err, s.at, forgot+31)
		}
	}
	// The tokens' refusals end 31 to 60 s after the loss; JWTs' the
	// leeway + 1 s after it. The later of the two is the verifier's.
	for _, tt := range []struct {
		leeway       time.Duration
		forgot, ends int64
	}{
		{10 * time.Second, 1_700_000_039, 1_700_000_070}, // the tokens'
		{10 * time.Second, 1_699_999_980, 1_700_000_040}, // the tokens'
		{90 * time.Second, 1_700_000_039, 1_700_000_130}, // the JWTs'
		{45 * time.Second, 1_699_999_980, 1_700_000_040}, // the tokens': JWTs' +46 s
		{45 * time.Second, 1_700_000_039, 1_700_000_085}, // the JWTs'
	} {
		j := testJWT(t)
		j.Leeway = tt.leeway
		v, _ := newJWTTest(t, j)
		if got := v.RefusalEnds(time.Unix(tt.forgot, 0)); got.Unix() != tt.ends {
			t.Errorf("leeway %v: RefusalEnds(%d) = %d, want %d", tt.leeway, tt.forgot, got.Unix(), tt.ends)
		}
		// The same before a verifier is made (a store opening logs it).
		c := Config{Params: DefaultParams(), Hosts: map[string]Host{"example.org": {JWT: j}, "example.net": {TokenSecrets: [][]byte{[]byte(secretB)}}}}
		if got := c.RefusalEnds(time.Unix(tt.forgot, 0)); got.Unix() != tt.ends {
			t.Errorf("leeway %v: Config.RefusalEnds(%d) = %d, want %d", tt.leeway, tt.forgot, got.Unix(), tt.ends)
		}
	}
}

// A store that cannot answer refuses a good JWT, and a bad one is refused
// for what it is.
func TestJWTStoreUnavailable(t *testing.T) {
	k := jwtTestKeys()
	v, _ := newJWTTest(t, testJWT(t))
	v.store = failingStore{}
	tok := signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, claims("alice", "example.org", jwtNow))
	for _, f := range []func(context.Context, string, string, string) Result{v.Verify, v.Check} {
		if r := f(context.Background(), "alice", "example.org", tok); r.Reason != StoreUnavailable || !errors.Is(r.Err, replay.ErrUnavailable) {
			t.Errorf("%+v, want store_unavailable", r)
		}
	}
	if r := v.Verify(context.Background(), "bob", "example.org", tok); r.Reason != WrongJID {
		t.Errorf("bob with alice's JWT, store down: %s", r.Reason)
	}
}

// A JWT's replay key is its (iss, jti) pair, unambiguous, and never a
// token's.
func TestJWTReplayKey(t *testing.T) {
	keys := map[replay.Key]string{}
	for _, p := range [][2]string{{"", "ab"}, {"a", "b"}, {"ab", ""}, {"", "a\x00b"}, {"x", strings.Repeat("j", 1000)}, {"x", strings.Repeat("j", 999)}} {
		k := jwtReplayKey(p[0], p[1])
		if prev, ok := keys[k]; ok {
			t.Errorf("(%q, %q) has the key of %s", p[0], p[1], prev)
		}
		keys[k] = fmt.Sprintf("%q", p)
		if k != jwtReplayKey(p[0], p[1]) {
			t.Errorf("(%q, %q): key not stable", p[0], p[1])
		}
	}
	// A token's key material starts with its host name, a JWT's with a
	// NUL byte, which no host name holds.
	if jwtKeyDomain[0] != 0 || ValidateHostName("\x00x") == nil {
		t.Error("a host name could start like a JWT's key material")
	}
}

// The claims type decodes the JID claim; a name encoding/json would not
// take for a tag is caught.
func TestProbeClaimsType(t *testing.T) {
	for name, want := range map[string]bool{"jid": true, "sub": true, "JID": true, "x-jid": true, `we"ird`: false, `back\slash`: false, "a,b": false} {
		typ, field := claimsType(name)
		if got := probeClaimsType(typ, field, name); got != want {
			t.Errorf("probe of %q: %v, want %v", name, got, want)
		}
		if err := checkJIDClaim(name); (err == nil) != want {
			t.Errorf("checkJIDClaim(%q) = %v", name, err)
		}
	}
}

// IsCompactJWS takes three base64url segments, the signature possibly
// empty, and nothing else.
func TestIsCompactJWS(t *testing.T) {
	for s, want := range map[string]bool{
		"a.b.c": true, "a.b.": true, "eyJ-_.AZaz09.x-_": true,
		"": false, "a.b": false, "a.b.c.d": false, ".b.c": false, "a..c": false, "..": false,
		"a.b.c ": false, "a .b.c": false, "a.b.c=": false, "a+.b.c": false, "a/.b.c": false,
		"12345678 abc=": false, "a.b.c\n": false,
	} {
		if got := IsCompactJWS(s); got != want {
			t.Errorf("IsCompactJWS(%q) = %v", s, got)
		}
	}
}

// Validate refuses what cannot be used, saying what, and never quotes a
// key.
func TestJWTValidate(t *testing.T) {
	k := jwtTestKeys()
	secret := make([]byte, 32)
	copy(secret, "a symmetric secret, do not quote")
	short := []byte("short secret")
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	private, _ := json.Marshal(jose.JSONWebKey{Key: k.ed, KeyID: "p"})
	set := func(keys ...jose.JSONWebKey) []byte { return jwkSet(t, keys...) }
	edKey := jose.JSONWebKey{Key: k.ed.Public(), KeyID: "e"}
	ok := func() JWT { return *testJWT(t) }
	mod := func(f func(*JWT)) JWT { j := ok(); f(&j); return j }
	for _, tt := range []struct {
		name string
		j    JWT
		want string // in the error; "" for none
	}{
		{"good", ok(), ""},
		{"no key set", mod(func(j *JWT) { j.KeySet = nil }), "not a JWK Set"},
		{"not JSON", mod(func(j *JWT) { j.KeySet = []byte("{keys") }), "not a JWK Set"},
		{"no keys member", mod(func(j *JWT) { j.KeySet = []byte(`{"kty":"oct"}`) }), "not a JWK Set"},
		{"empty set", mod(func(j *JWT) { j.KeySet = []byte(`{"keys":[]}`) }), "has no key"},
		{"too many keys", mod(func(j *JWT) {
			var ks []jose.JSONWebKey
			for i := range MaxJWTKeys + 1 {
				ks = append(ks, jose.JSONWebKey{Key: k.ed.Public(), KeyID: fmt.Sprint(i)})
			}
			j.KeySet = set(ks...)
		}), "at most 16"},
		{"a key without kid among several", mod(func(j *JWT) { j.KeySet = set(edKey, jose.JSONWebKey{Key: k.ec.Public()}) }), "JWT key 1 has no kid"},
		{"a key with an empty kid among several", mod(func(j *JWT) {
			j.KeySet = []byte(strings.Replace(string(set(edKey, jose.JSONWebKey{Key: k.ec.Public()})), `"kty":"EC"`, `"kid":"","kty":"EC"`, 1))
		}), "empty kid"},
		{"two keys of one kid", mod(func(j *JWT) { j.KeySet = set(edKey, jose.JSONWebKey{Key: k.ec.Public(), KeyID: "e"}) }), `(kid "e"): kid used by another key`},
		{"a private key", mod(func(j *JWT) { j.KeySet = []byte(`{"keys":[` + string(private) + `]}`) }), "is a private key"},
		{"an encryption key", mod(func(j *JWT) { j.KeySet = set(jose.JSONWebKey{Key: k.ed.Public(), KeyID: "e", Use: "enc"}) }), `use "enc"`},
		{"key_ops without verify", mod(func(j *JWT) {
			j.KeySet = []byte(strings.Replace(string(set(edKey)), `"kty"`, `"key_ops":["encrypt"],"kty"`, 1))
		}), "key_ops"},
		{"a short symmetric key", mod(func(j *JWT) { j.KeySet = set(jose.JSONWebKey{Key: short, KeyID: "s"}) }), "symmetric key of 12 bytes: at least 32"},
		{"a small RSA key", mod(func(j *JWT) { j.KeySet = set(jose.JSONWebKey{Key: rsaSmall.Public(), KeyID: "r"}) }), "RSA key of 1024 bits"},
		{"an unknown kty", mod(func(j *JWT) { j.KeySet = []byte(`{"keys":[{"kty":"XYZ","kid":"x"}]}`) }), "JWT key 0 (kid \"x\"): not a valid JWK"},
		{"a broken oct key", mod(func(j *JWT) { j.KeySet = []byte(`{"keys":[{"kty":"oct","kid":"x","k":"!!` + string(secret) + `"}]}`) }), "not a valid symmetric JWK"},
		{"a key no algorithm fits", mod(func(j *JWT) { j.KeySet = set(edKey); j.Algorithms = []string{"ES256"} }), "fits none of the JWT algorithms ES256"},
		{"a P-384 key for ES256", mod(func(j *JWT) {
			j.KeySet = set(jose.JSONWebKey{Key: k.ec384.Public(), KeyID: "e"})
			j.Algorithms = []string{"ES256"}
		}), "fits none"},
		{"a key for an alg not allowed", mod(func(j *JWT) {
			j.KeySet = set(jose.JSONWebKey{Key: k.ed.Public(), KeyID: "e", Algorithm: "EdDSA"})
			j.Algorithms = []string{"ES256"}
		}), `is for alg "EdDSA"`},
		{"a symmetric key, HS256 not allowed", mod(func(j *JWT) {
			j.KeySet = set(jose.JSONWebKey{Key: secret, KeyID: "s"})
			j.Algorithms = DefaultJWTAlgorithms()
		}), "fits none"},
		{"no algorithms", mod(func(j *JWT) { j.Algorithms = nil }), "no JWT algorithm"},
		{"alg none", mod(func(j *JWT) { j.Algorithms = []string{"EdDSA", "none"} }), `"none" is never allowed`},
		{"an unknown alg", mod(func(j *JWT) { j.Algorithms = []string{"EdDSA", "ES256K"} }), `"ES256K" is not one of`},
		{"an alg twice", mod(func(j *JWT) { j.Algorithms = []string{"EdDSA", "EdDSA"} }), "listed twice"},
		{"an alg of another case", mod(func(j *JWT) { j.Algorithms = []string{"eddsa"} }), "is not one of"},
		{"no JID claim", mod(func(j *JWT) { j.JIDClaim = "" }), "1 to 64 bytes"},
		{"JID claim exp", mod(func(j *JWT) { j.JIDClaim = "exp" }), `cannot be "exp"`},
		{"JID claim JTI", mod(func(j *JWT) { j.JIDClaim = "JTI" }), `cannot be "JTI"`},
		{"JID claim Sub", mod(func(j *JWT) { j.JIDClaim = "Sub" }), `cannot be "Sub"`},
		{"no max lifetime", mod(func(j *JWT) { j.MaxLifetime = 0 }), "max lifetime must be 1 s to 24h0m0s, not 0s"},
		{"max lifetime of days", mod(func(j *JWT) { j.MaxLifetime = 48 * time.Hour }), "max lifetime"},
		{"negative leeway", mod(func(j *JWT) { j.Leeway = -time.Second }), "leeway must be 0 to 5m0s"},
		{"long leeway", mod(func(j *JWT) { j.Leeway = time.Hour }), "leeway"},
		{"long issuer", mod(func(j *JWT) { j.Issuer = strings.Repeat("i", 1025) }), "at most 1024 bytes"},
	} {
		err := tt.j.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		case err != nil && strings.Contains(err.Error(), "quote"):
			t.Errorf("%s: %q quotes the secret", tt.name, err)
		}
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Errorf("%s: %T, want an *Error", tt.name, err)
		}
		if tt.want != "" {
			if _, err := New(Config{Params: Params{Digits: 8, Interval: 30 * time.Second, MinReplayTTL: time.Hour},
				Hosts: map[string]Host{"h": {JWT: &tt.j}}, Store: replay.NewMemory(replay.MemoryOptions{TTL: time.Hour})}); err == nil {
				t.Errorf("%s: New accepts it", tt.name)
			}
		}
	}
	if j := ok(); !j.HasSymmetricKey() {
		t.Error("HasSymmetricKey misses an oct key")
	}
	if (&JWT{KeySet: set(edKey)}).HasSymmetricKey() {
		t.Error("HasSymmetricKey finds one in a set of public keys")
	}
}

// MintJWT's JWTs, from a JWK or a PEM key, verify; its claims are what it
// says.
func TestMintJWT(t *testing.T) {
	k := jwtTestKeys()
	pkcs8 := func(key any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	jwk := func(key any, kid string) []byte {
		b, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v, _ := newJWTTest(t, testJWT(t))
	for _, tt := range []struct {
		name, alg string
		key       []byte
		claims    JWTClaims
		want      Reason
		wantAlg   string
	}{
		{"Ed25519 JWK", "", jwk(k.ed, kidEd), JWTClaims{}, Accepted, "EdDSA"},
		{"P-256 JWK", "", jwk(k.ec, kidEC), JWTClaims{}, Accepted, "ES256"},
		{"RSA JWK", "", jwk(k.rsa, kidRSA), JWTClaims{}, Accepted, "RS256"},
		{"RSA JWK, PS256", "PS256", jwk(k.rsa, kidRSA), JWTClaims{}, Accepted, "PS256"},
		{"oct JWK", "", jwk(k.hmac, kidHS), JWTClaims{}, Accepted, "HS256"},
		{"Ed25519 PEM, kid given", "", pkcs8(k.ed), JWTClaims{KeyID: kidEd}, Accepted, "EdDSA"},
		{"P-256 PEM, kid given", "", pkcs8(k.ec), JWTClaims{KeyID: kidEC}, Accepted, "ES256"},
		{"RSA PEM, kid given", "", pkcs8(k.rsa), JWTClaims{KeyID: kidRSA}, Accepted, "RS256"},
		{"Ed25519 PEM, no kid", "", pkcs8(k.ed), JWTClaims{}, UnknownKey, "EdDSA"},
		{"lifetime 300 s", "", jwk(k.ed, kidEd), JWTClaims{Lifetime: 300 * time.Second}, Accepted, "EdDSA"},
		{"lifetime 301 s", "", jwk(k.ed, kidEd), JWTClaims{Lifetime: 301 * time.Second}, LifetimeTooLong, "EdDSA"},
		{"another JID claim", "", jwk(k.ed, kidEd), JWTClaims{JIDClaim: "sub"}, WrongJID, "EdDSA"},
		{"P-384 JWK", "", jwk(k.ec384, "x"), JWTClaims{}, AlgorithmNotAllowed, "ES384"},
	} {
		c := tt.claims
		c.User, c.Host, c.Alg = "alice", "example.org", tt.alg
		tok, err := MintJWT(tt.key, c, time.Unix(jwtNow, 0))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if r := v.Verify(context.Background(), "alice", "example.org", tok); r.Reason != tt.want {
			t.Errorf("%s: %s (%v), want %s", tt.name, r.Reason, r.Err, tt.want)
		}
		// The claims, read independently.
		parts := strings.Split(tok, ".")
		var header map[string]any
		var payload map[string]any
		hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
		pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		if json.Unmarshal(hb, &header) != nil || json.Unmarshal(pb, &payload) != nil {
			t.Fatalf("%s: %q is not a JWT", tt.name, tok)
		}
		life := float64(60)
		if c.Lifetime != 0 {
			life = c.Lifetime.Seconds()
		}
		claim := cmpOrDefault(c.JIDClaim, "jid")
		jti, _ := payload["jti"].(string)
		if header["alg"] != tt.wantAlg || payload[claim] != "alice@example.org" || payload["iat"] != float64(jwtNow) ||
			payload["exp"] != float64(jwtNow)+life || len(jti) != 22 {
			t.Errorf("%s: header %v, payload %v", tt.name, header, payload)
		}
	}
	// Two JWTs minted alike differ by their jti.
	a, _ := MintJWT(jwk(k.ed, kidEd), JWTClaims{User: "alice", Host: "example.org"}, time.Unix(jwtNow, 0))
	b, _ := MintJWT(jwk(k.ed, kidEd), JWTClaims{User: "alice", Host: "example.org"}, time.Unix(jwtNow, 0))
	if a == b {
		t.Error("two minted JWTs are the same")
	}
	if r := v.Verify(context.Background(), "alice", "example.org", a); !r.OK() {
		t.Errorf("first: %s", r.Reason)
	}
	if r := v.Verify(context.Background(), "alice", "example.org", b); !r.OK() {
		t.Errorf("second, other jti: %s", r.Reason)
	}
	// Issuer and audience.
	j := testJWT(t)
	j.Issuer, j.Audience = "app", "xmpp"
	vi, _ := newJWTTest(t, j)
	tok, err := MintJWT(jwk(k.ed, kidEd), JWTClaims{User: "alice", Host: "example.org", Issuer: "app", Audience: "xmpp"}, time.Unix(jwtNow, 0))
	if r := vi.Verify(context.Background(), "alice", "example.org", tok); err != nil || !r.OK() {
		t.Errorf("with iss and aud: %v, %s", err, r.Reason)
	}

	// What it refuses.
	rsaSmall, _ := rsa.GenerateKey(rand.Reader, 1024)
	ecDER, _ := x509.MarshalECPrivateKey(k.ec)
	for _, tt := range []struct {
		name string
		key  []byte
		c    JWTClaims
		want string
	}{
		{"a public JWK", jwk(k.ed.Public(), ""), JWTClaims{}, "public JWK"},
		{"not a key", []byte("hello"), JWTClaims{}, "neither a JWK"},
		{"a broken JWK", []byte(`{"kty":"OKP"}`), JWTClaims{}, "not a valid JWK"},
		{"SEC 1 PEM", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), JWTClaims{}, `"EC PRIVATE KEY" block`},
		{"broken PEM", []byte("-----BEGIN PRIVATE KEY-----\nAAAA"), JWTClaims{}, "not PEM"},
		{"broken PKCS #8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")}), JWTClaims{}, "not a PKCS #8"},
		{"a short secret", jwk([]byte("short"), ""), JWTClaims{}, "5 bytes"},
		{"a small RSA key", pkcs8(rsaSmall), JWTClaims{}, "1024 bits"},
		{"alg of another key type", jwk(k.ed, ""), JWTClaims{Alg: "ES256"}, `cannot sign with alg "ES256"`},
		{"alg none", jwk(k.ed, ""), JWTClaims{Alg: "none"}, `alg "none"`},
		{"no user", jwk(k.ed, ""), JWTClaims{User: "-"}, "user name"},
		{"bad host", jwk(k.ed, ""), JWTClaims{Host: "a/b"}, "forbidden character"},
		{"lifetime of a fraction", jwk(k.ed, ""), JWTClaims{Lifetime: 1500 * time.Millisecond}, "whole number of seconds"},
		{"lifetime of days", jwk(k.ed, ""), JWTClaims{Lifetime: 48 * time.Hour}, "24h0m0s"},
		{"JID claim exp", jwk(k.ed, ""), JWTClaims{JIDClaim: "exp"}, `cannot be "exp"`},
		{"too long", append([]byte("{"), make([]byte, 70_000)...), JWTClaims{}, "longer than"},
	} {
		c := tt.c
		if c.User == "" {
			c.User = "alice"
		} else if c.User == "-" {
			c.User = ""
		}
		c.Host = cmpOrDefault(c.Host, "example.org")
		_, err := MintJWT(tt.key, c, time.Unix(jwtNow, 0))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
	// The public JWK of a signing key verifies its JWTs.
	sk, err := ParseSigningKey(pkcs8(k.ec))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sk.PublicJWK()
	if err != nil || strings.Contains(string(pub), `"d"`) {
		t.Fatalf("PublicJWK: %s, %v", pub, err)
	}
	vp, _ := newJWTTest(t, &JWT{KeySet: []byte(`{"keys":[` + string(pub) + `]}`), Algorithms: []string{"ES256"}, JIDClaim: "jid", MaxLifetime: time.Minute})
	tok, err = sk.Mint(JWTClaims{User: "alice", Host: "example.org"}, time.Unix(jwtNow, 0))
	if r := vp.Verify(context.Background(), "alice", "example.org", tok); err != nil || !r.OK() {
		t.Errorf("a JWT verified by its key's PublicJWK: %v, %s", err, r.Reason)
	}
	if sk.Algorithm() != "ES256" || sk.KeyID() != "" {
		t.Errorf("Algorithm %q, KeyID %q", sk.Algorithm(), sk.KeyID())
	}
}

func cmpOrDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Reasons lists every Reason constant of the package, once.
func TestReasons(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var declared []Reason
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
					continue
				}
				for _, val := range vs.Values {
					lit := val.(*ast.BasicLit)
					declared = append(declared, Reason(strings.Trim(lit.Value, `"`)))
				}
			}
		}
	}
	got := Reasons()
	if len(declared) < 17 {
		t.Fatalf("found %d Reason constants: %v", len(declared), declared)
	}
	slices.Sort(declared)
	sorted := slices.Sorted(slices.Values(got))
	if !slices.Equal(sorted, declared) || len(slices.Compact(slices.Clone(sorted))) != len(got) {
		t.Errorf("Reasons() = %v, the constants are %v", got, declared)
	}
	if got[0] != Accepted {
		t.Errorf("Reasons()[0] = %s, want accepted", got[0])
	}
	got[0] = "changed"
	if Reasons()[0] != Accepted {
		t.Error("Reasons returns a shared slice")
	}
	// The strings are a contract with metrics and logs.
	for r, s := range map[Reason]string{Expired: "expired", NotYetValid: "not_yet_valid", LifetimeTooLong: "lifetime_too_long",
		MissingJTI: "missing_jti", WrongJID: "wrong_jid", UnknownKey: "unknown_key", AlgorithmNotAllowed: "algorithm_not_allowed",
		BadSignature: "bad_signature", Replayed: "replayed", Malformed: "malformed"} {
		if string(r) != s {
			t.Errorf("%q, want %q", r, s)
		}
	}
}

// Of many concurrent Verifys of one JWT, exactly one accepts it; the
// others say replayed.
func TestJWTConcurrentOnce(t *testing.T) {
	k := jwtTestKeys()
	v, _ := newJWTTest(t, testJWT(t))
	for round := range 20 {
		tok := signJWT(t, jwt.SigningMethodHS256, k.hmac, kidHS, claims("alice", "example.org", jwtNow))
		var accepted, replayed atomic.Int32
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				switch r := v.Verify(context.Background(), "alice", "example.org", tok); r.Reason {
				case Accepted:
					accepted.Add(1)
				case Replayed:
					replayed.Add(1)
				default:
					t.Errorf("%+v", r)
				}
			})
		}
		wg.Wait()
		if accepted.Load() != 1 || replayed.Load() != 15 {
			t.Errorf("round %d: %d accepted, %d replayed; want 1 and 15", round, accepted.Load(), replayed.Load())
		}
	}
}
