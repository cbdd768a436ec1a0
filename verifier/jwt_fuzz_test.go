package verifier

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokenauthd/tokenauthd/replay"
)

// The fuzz verifier's keys, fixed so that the committed seeds hold JWTs
// signed with them: an Ed25519 key (kid "f-ed") and an HMAC key ("f-hs").
var (
	fuzzEd   = ed25519.NewKeyFromSeed([]byte("tokenauthd FuzzJWT Ed25519 seed!"))
	fuzzHMAC = []byte("tokenauthd FuzzJWT HMAC-SHA256 key, 48 bytes...")
)

// fuzzJWTVerifier is a verifier for example.org, of tokens and JWTs
// (EdDSA and HS256, max lifetime 300 s, leeway 30 s), its clock at jwtNow.
func fuzzJWTVerifier(t testing.TB) *Verifier {
	t.Helper()
	j := &JWT{
		KeySet: jwkSet(t, jose.JSONWebKey{Key: fuzzEd.Public(), KeyID: "f-ed"},
			jose.JSONWebKey{Key: fuzzHMAC, KeyID: "f-hs"}),
		Algorithms: []string{"EdDSA", "HS256"}, JIDClaim: "jid",
		MaxLifetime: DefaultJWTMaxLifetime, Leeway: DefaultJWTLeeway,
	}
	now := func() time.Time { return time.Unix(jwtNow, 0) }
	p := DefaultParams()
	p.MinReplayTTL = j.ReplayTTL()
	v, err := New(Config{
		Params: p,
		Hosts:  map[string]Host{"example.org": {TokenSecrets: [][]byte{[]byte(secretA)}, OTPSeeds: []string{rfcSeed}, JWT: j}},
		Store:  replay.NewMemory(replay.MemoryOptions{Capacity: 100_000, TTL: p.ReplayTTL(), Now: now}),
		Now:    now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fuzzHS256 is the HS256 JWT of the payload's exact bytes under the fuzz
// HMAC key.
func fuzzHS256(payload []byte) string {
	in := b64(`{"alg":"HS256","kid":"f-hs","typ":"JWT"}`) + "." + base64.RawURLEncoding.EncodeToString(payload)
	m := hmac.New(sha256.New, fuzzHMAC)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// FuzzJWT checks the JWT path against a model of its own:
//
//   - with sign, the payload is signed (HS256) as it is: whatever it
//     holds, the verdict is one of Reasons, an accepted JWT has the
//     claims acceptance needs, read independently, and is then replayed;
//     and a payload of exactly a good jid, jti, iat and exp is accepted
//     (or replayed, if the fuzzer made it before);
//   - without, the password is taken as it is: it is accepted only if
//     its signature verifies under a fuzz key by hand, and then once.
func FuzzJWT(f *testing.F) {
	v := fuzzJWTVerifier(f)
	reasons := Reasons()
	f.Fuzz(func(t *testing.T, user, password string, payload []byte, sign bool) {
		ctx := context.Background()
		if sign {
			password = fuzzHS256(payload)
		}
		r := v.Verify(ctx, user, "example.org", password)
		if !slices.Contains(reasons, r.Reason) {
			t.Fatalf("Verify(%q, %q) = %+v: not a reason of Reasons", user, password, r)
		}
		if r.Err != nil && len(password) > 16 && strings.Contains(r.Err.Error(), password) {
			t.Fatalf("error %q quotes the password", r.Err)
		}
		if sign {
			c, good := modelClaims(user, payload)
			switch {
			case r.OK() && !c.acceptable(user):
				t.Fatalf("payload %q for %q accepted: %+v", payload, user, r)
			case good && !r.OK() && r.Reason != Replayed:
				t.Fatalf("good payload %q for %q refused: %+v", payload, user, r)
			}
		} else if r.OK() && !signedByFuzzKey(password) {
			t.Fatalf("Verify(%q, %q) accepted a password no fuzz key signed", user, password)
		}
		if r.OK() {
			if r := v.Verify(ctx, user, "example.org", password); r.Reason != Replayed {
				t.Fatalf("accepted twice: %q: %+v", password, r)
			}
		}
	})
}

// fuzzClaims are a payload's claims as the model reads them.
type fuzzClaims struct {
	m map[string]any
}

// modelClaims decodes payload with encoding/json alone, and reports
// whether it is exactly a good JWT's for user@example.org: jid, a
// non-empty jti, iat now and exp a minute later, and nothing else.
func modelClaims(user string, payload []byte) (fuzzClaims, bool) {
	var c fuzzClaims
	if json.Unmarshal(payload, &c.m) != nil || c.m == nil {
		return c, false
	}
	jti, _ := c.m["jti"].(string)
	good := validUser(user) && len(payload) < 4096 &&
		slices.Equal(slices.Sorted(maps.Keys(c.m)), []string{"exp", "iat", "jid", "jti"}) &&
		c.m["jid"] == user+"@example.org" && jti != "" &&
		c.m["iat"] == float64(jwtNow) && c.m["exp"] == float64(jwtNow+60)
	return c, good
}

// acceptable reports whether the claims are those of an acceptable JWT
// for user@example.org at jwtNow: the JID, a jti, an exp that is present,
// after now less the leeway, and at most the max lifetime after iat (or
// after now, plus the leeway); an nbf and an iat not after now plus the
// leeway.
func (c fuzzClaims) acceptable(user string) bool {
	if c.m == nil {
		return false
	}
	// Go's JSON decoding matches names regardless of case: so do these
	// lookups, with the last match winning as it does.
	get := func(name string) (any, bool) {
		var v any
		found := false
		for k, x := range c.m {
			if strings.EqualFold(k, name) {
				v, found = x, true
			}
		}
		return v, found
	}
	jid, _ := get("jid")
	jti, _ := get("jti")
	if s, ok := jti.(string); !ok || s == "" || jid != user+"@example.org" {
		return false
	}
	num := func(name string) (float64, bool, bool) { // value, present, a number
		v, ok := get(name)
		f, isNum := v.(float64)
		return f, ok, isNum
	}
	const now, leeway, maxLife = float64(jwtNow), 30, 300
	exp, ok, isNum := num("exp")
	if !ok || !isNum || exp <= now-leeway {
		return false
	}
	if iat, ok, isNum := num("iat"); ok {
		if !isNum || iat > now+leeway || exp-iat > maxLife+1 {
			return false
		}
	} else if exp-now > maxLife+leeway+1 {
		return false
	}
	if nbf, ok, isNum := num("nbf"); ok && (!isNum || nbf > now+leeway) {
		return false
	}
	return true
}

// signedByFuzzKey reports whether password is a compact JWS whose
// signature verifies, by hand, under the fuzz Ed25519 or HMAC key.
func signedByFuzzKey(password string) bool {
	parts := strings.Split(password, ".")
	if len(parts) != 3 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	in := parts[0] + "." + parts[1]
	m := hmac.New(sha256.New, fuzzHMAC)
	m.Write([]byte(in))
	return ed25519.Verify(fuzzEd.Public().(ed25519.PublicKey), []byte(in), sig) || hmac.Equal(m.Sum(nil), sig)
}
