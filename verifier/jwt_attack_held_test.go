package verifier

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// hmacJWT makes a JWT by hand: header and payload as given, signed with
// HS256, HS384 or HS512 and key.
func hmacJWT(alg, header, payload string, key []byte) string {
	h := map[string]func() hash.Hash{"HS256": sha256.New, "HS384": sha512.New384, "HS512": sha512.New}[alg]
	in := b64(header) + "." + b64(payload)
	m := hmac.New(h, key)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// edJWT signs header and payload, as given, with an Ed25519 key.
func edJWT(key ed25519.PrivateKey, header, payload string) string {
	in := b64(header) + "." + b64(payload)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(in)))
}

// The attacks on single-use JWTs that were refused: alg confusion with
// every public key in many encodings, alg none, kid tricks, JID claim
// tricks, odd time claims, odd shapes; and, for a second yes, the same
// (iss, jti) in another JWT (re-signed, a malleated ECDSA or Ed25519
// signature, re-encoded claims), refused as replayed. The counts are
// logged.
func TestAttackJWTHeld(t *testing.T) {
	k := jwtTestKeys()
	ctx := context.Background()
	single := func(key any, kid string, algs ...string) *JWT {
		return &JWT{KeySet: jwkSet(t, jose.JSONWebKey{Key: key, KeyID: kid}), Algorithms: algs,
			JIDClaim: "jid", MaxLifetime: 300 * time.Second, Leeway: 30 * time.Second}
	}
	edPub := k.ed.Public().(ed25519.PublicKey)
	configs := map[string]*JWT{
		"set":      testJWT(t),
		"ed only":  single(edPub, "", "EdDSA", "HS256"),
		"rsa only": single(k.rsa.Public(), "", "RS256", "PS256", "HS256", "HS384", "HS512"),
		"ec only":  single(k.ec.Public(), "ec", "ES256", "HS256"),
	}
	counts := map[string]int{}
	refuse := func(v *Verifier, kind, what, user, tok string) {
		t.Helper()
		counts[kind]++
		if r := v.Verify(ctx, user, "example.org", tok); r.OK() {
			t.Errorf("%s: %s: accepted", kind, what)
		}
	}
	payload := func(kv ...any) string {
		b, _ := json.Marshal(with(claims("alice", "example.org", jwtNow), kv...))
		return string(b)
	}

	// 1. Alg confusion: HMAC keyed with a public key of the set.
	var secrets [][]byte
	for _, pub := range []any{k.rsa.Public(), k.rsa2.Public(), k.ec.Public(), edPub} {
		der, _ := x509.MarshalPKIXPublicKey(pub)
		jwk, _ := json.Marshal(jose.JSONWebKey{Key: pub})
		for _, s := range [][]byte{der, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), jwk} {
			secrets = append(secrets, s, []byte(strings.TrimSpace(string(s))), []byte(base64.RawURLEncoding.EncodeToString(s)))
		}
	}
	rsaPKCS1 := x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)
	ecPoint := append([]byte{4}, append(k.ec.X.FillBytes(make([]byte, 32)), k.ec.Y.FillBytes(make([]byte, 32))...)...)
	secrets = append(secrets, rsaPKCS1, pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: rsaPKCS1}),
		k.rsa.N.Bytes(), ecPoint, ecPoint[1:], []byte(edPub), testSet(t), []byte(b64(string(edPub))))
	for name, j := range configs {
		v, _ := newJWTTest(t, j)
		for _, s := range secrets {
			for _, alg := range []string{"HS256", "HS384", "HS512"} {
				for _, kid := range []string{"", kidEd, kidEC, kidRSA, kidRSA2, "ec"} {
					h := fmt.Sprintf(`{"alg":%q,"kid":%q}`, alg, kid)
					if kid == "" {
						h = fmt.Sprintf(`{"alg":%q}`, alg)
					}
					refuse(v, "alg confusion", name+" "+h, "alice", hmacJWT(alg, h, payload(), s))
				}
			}
		}
	}

	// 2. alg none, in every spelling, any signature part.
	for name, j := range configs {
		v, _ := newJWTTest(t, j)
		for _, alg := range []string{"none", "None", "NONE", "nOnE", "none ", " none", "", "null"} {
			for _, extra := range []string{"", `,"kid":"` + kidEd + `"`, `,"kid":"ec"`} {
				for _, sig := range []string{"", "c2ln", "AAAA"} {
					h := fmt.Sprintf(`{"alg":%q%s}`, alg, extra)
					refuse(v, "alg none", name+" "+h, "alice", b64(h)+"."+b64(payload())+"."+sig)
				}
			}
		}
		for _, h := range []string{`{"alg":null}`, `{"alg":["EdDSA"]}`, `{"alg":{"x":1}}`, `{"alg":1}`, `{}`, `{"typ":"JWT"}`} {
			refuse(v, "alg none", name+" "+h, "alice", b64(h)+"."+b64(payload())+".c2ln")
		}
	}

	// 3. kid tricks, signed with a key outside the set (Ed25519 ed2) or
	// the set's own key under a kid of another kind.
	v, _ := newJWTTest(t, testJWT(t))
	kids := []any{nil, 1, 1.5, true, []string{kidEd}, map[string]string{"kid": kidEd}, "", kidEd + "\x00", kidEd + " ", " " + kidEd,
		strings.ToUpper(kidEd), "../" + kidEd, "./" + kidEd, "/" + kidEd, kidEd + "/..", "ed\u20112024", strings.Repeat("k", 3000),
		kidEC, kidRSA, kidHS, "jwt.example", "example.org/" + kidEd}
	for _, kid := range kids {
		hb, _ := json.Marshal(map[string]any{"alg": "EdDSA", "kid": kid})
		refuse(v, "kid tricks", fmt.Sprintf("ed2 under kid %v", kid), "alice", edJWT(k.ed2, string(hb), payload()))
		if s, ok := kid.(string); !ok || s != kidEd {
			refuse(v, "kid tricks", fmt.Sprintf("ed under kid %v", kid), "alice", edJWT(k.ed, string(hb), payload()))
		}
	}
	// Two kids, in both orders: the one that names the key, and another.
	for _, h := range []string{`{"alg":"EdDSA","kid":"` + kidEd + `","kid":"` + kidEC + `"}`, `{"alg":"EdDSA","kid":"` + kidEC + `","kid":"` + kidEd + `"}`} {
		refuse(v, "kid tricks", "ed2 "+h, "alice", edJWT(k.ed2, h, payload()))
	}
	// Another host's key: jwt.example's set has ed without kid.
	refuse(v, "kid tricks", "a key of jwt.example's set for example.org", "alice", signJWT(t, jwt.SigningMethodEdDSA, k.ed2, "", claims("alice", "example.org", jwtNow)))

	// 4. JID claim tricks, each signed by the set's key: the login is
	// alice@example.org.
	jids := []any{"alice@example.org\x00", "alice@example.org ", " alice@example.org", "alice@example.org\n", "Alice@example.org",
		"alice@Example.org", "alice@example.org.", "alice@example.org/res", "alice@@example.org", "alice", "@example.org",
		"ａlice@example.org", "аlice@example.org", "alice\u200b@example.org", "alice@example.org\u0000x",
		[]string{"alice@example.org"}, map[string]string{"jid": "alice@example.org"}, 1, true, nil}
	for _, jid := range jids {
		c := claims("alice", "example.org", jwtNow)
		if jid == nil {
			c["jid"] = nil // JSON null
		} else {
			c["jid"] = jid
		}
		b, _ := json.Marshal(c)
		refuse(v, "JID tricks", fmt.Sprintf("jid %q", jid), "alice", edJWT(k.ed, `{"alg":"EdDSA","kid":"`+kidEd+`"}`, string(b)))
	}
	for _, p := range []string{
		`{"sub":"alice@example.org","iat":%d,"exp":%d,"jti":"n-%d"}`,
		`{"x":{"jid":"alice@example.org"},"iat":%d,"exp":%d,"jti":"n-%d"}`,
		`{"jid ":"alice@example.org","iat":%d,"exp":%d,"jti":"n-%d"}`,
		`{"j\u0069d":"bob@example.org","jid2":"alice@example.org","iat":%d,"exp":%d,"jti":"n-%d"}`,
	} {
		i := counts["JID tricks"]
		refuse(v, "JID tricks", p, "alice", edJWT(k.ed, `{"alg":"EdDSA","kid":"`+kidEd+`"}`, fmt.Sprintf(p, jwtNow, jwtNow+60, i)))
	}
	// A good JWT for alice, the login another spelling of her.
	for _, user := range []string{"Alice", "alice\x00", "alice ", "alice@example.org", "ａlice", "alice\u200b", "alice/res"} {
		refuse(v, "JID tricks", fmt.Sprintf("login %q", user), user, signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, claims("alice", "example.org", jwtNow)))
	}

	// 5. Time claims of odd types and sizes.
	times := []any{1e300, -1e300, 9.223372e18, 9.3e18, -9.3e18, 1e19, float64(1 << 62), "soon", []int{jwtNow + 60}, map[string]int{"t": 1}, true, nil, -1, 0}
	for _, x := range times {
		refuse(v, "time claims", fmt.Sprintf("exp %v", x), "alice", signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, with(claims("alice", "example.org", jwtNow), "exp", x)))
		if x != nil {
			refuse(v, "time claims", fmt.Sprintf("iat %v", x), "alice", signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, with(claims("alice", "example.org", jwtNow), "iat", x, "exp", int64(jwtNow+60))))
			refuse(v, "time claims", fmt.Sprintf("nbf %v, no iat", x), "alice", signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, with(claims("alice", "example.org", jwtNow), "iat", nil, "nbf", x, "exp", int64(jwtNow+1e6))))
		}
	}

	// 6. Shapes: crit, b64, JWS JSON serialization, segments, padding,
	// whitespace, the standard base64 alphabet.
	good := signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, claims("alice", "example.org", jwtNow))
	parts := strings.Split(good, ".")
	for _, h := range []string{`{"alg":"EdDSA","kid":"` + kidEd + `","crit":[]}`, `{"alg":"EdDSA","kid":"` + kidEd + `","crit":["b64"],"b64":false}`,
		`{"alg":"EdDSA","kid":"` + kidEd + `","crit":"exp"}`, `{"alg":"EdDSA","kid":"` + kidEd + `","crit":null}`} {
		refuse(v, "shapes", h, "alice", edJWT(k.ed, h, payload()))
	}
	// b64 false without crit: the payload is not base64url, signed as is.
	h := b64(`{"alg":"EdDSA","kid":"` + kidEd + `","b64":false}`)
	raw := payload()
	refuse(v, "shapes", "b64 false, raw payload", "alice", h+"."+raw+"."+base64.RawURLEncoding.EncodeToString(ed25519.Sign(k.ed, []byte(h+"."+raw))))
	jsonJWS, _ := json.Marshal(map[string]string{"protected": parts[0], "payload": parts[1], "signature": parts[2]})
	std := strings.NewReplacer("-", "+", "_", "/").Replace(good)
	for what, tok := range map[string]string{
		"JSON serialization": string(jsonJWS), "four segments": good + ".", "five segments": good + ".x.y",
		"leading dot": "." + good, "padding": good + "=", "padded header": parts[0] + "=." + parts[1] + "." + parts[2],
		"space": good + " ", "newline": good + "\n", "space inside": parts[0] + ". " + parts[1] + "." + parts[2],
		"standard alphabet": std, "tab": "\t" + good, "no signature": parts[0] + "." + parts[1] + ".",
		"header twice": parts[0] + "." + parts[0] + "." + parts[2], "swapped": parts[1] + "." + parts[0] + "." + parts[2],
	} {
		if what == "standard alphabet" && std == good {
			continue
		}
		refuse(v, "shapes", what, "alice", tok)
	}

	// 7. A second yes: the same (iss, jti) in another JWT.
	replayed := func(kind, what, tok string) {
		t.Helper()
		counts[kind]++
		if r := v.Verify(ctx, "alice", "example.org", tok); r.Reason != Replayed {
			t.Errorf("%s: %s: %s (%v), want replayed", kind, what, r.Reason, r.Err)
		}
	}
	ecTok := signJWT(t, jwt.SigningMethodES256, k.ec, kidEC, claims("alice", "example.org", jwtNow))
	if r := v.Verify(ctx, "alice", "example.org", ecTok); !r.OK() {
		t.Fatalf("ES256: %s", r.Reason)
	}
	p := strings.Split(ecTok, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(p[2])
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	malleated := append(append([]byte{}, sig[:32]...), s.FillBytes(make([]byte, 32))...)
	mTok := p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(malleated)
	if !ecdsa.VerifyASN1(&k.ec.PublicKey, sha256Sum(p[0]+"."+p[1]), asn1Sig(sig[:32], malleated[32:])) {
		t.Fatal("the malleated ECDSA signature does not verify")
	}
	replayed("second yes", "ECDSA s -> n-s", mTok)
	var ecClaims map[string]any
	pb, _ := base64.RawURLEncoding.DecodeString(p[1])
	json.Unmarshal(pb, &ecClaims)
	jti := ecClaims["jti"].(string)
	same := func() jwt.MapClaims { return with(claims("alice", "example.org", jwtNow), "jti", jti) }
	replayed("second yes", "re-signed with the EdDSA key", signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, same()))
	replayed("second yes", "re-signed with the HMAC key", signJWT(t, jwt.SigningMethodHS256, k.hmac, kidHS, same()))
	replayed("second yes", "re-signed with PS256", signJWT(t, jwt.SigningMethodPS256, k.rsa2, kidRSA2, same()))
	replayed("second yes", "iss empty", signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, with(same(), "iss", "")))
	replayed("second yes", "another exp", signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, with(same(), "exp", int64(jwtNow+61))))
	replayed("second yes", "another typ", edJWT(k.ed, `{"typ":"JWT","kid":"`+kidEd+`","alg":"EdDSA"}`, string(pb)))
	replayed("second yes", "claims reordered, spaced", edJWT(k.ed, `{"alg":"EdDSA","kid":"`+kidEd+`"}`,
		fmt.Sprintf(` { "jti" : %q , "exp" : %d , "iat" : %d , "jid" : "alice@example.org" } `, jti, jwtNow+60, jwtNow)))
	esc := strings.NewReplacer("j", `\u006a`, "-", `\u002d`).Replace(jti)
	replayed("second yes", "jti escaped", edJWT(k.ed, `{"alg":"EdDSA","kid":"`+kidEd+`"}`,
		fmt.Sprintf(`{"jid":"alice@example.org","iat":%d,"exp":%d,"jti":"%s"}`, jwtNow, jwtNow+60, esc)))
	// A claim named twice is refused before anything is looked up
	// (TestAttackJWTClaimNamesCaseInsensitive).
	refuse(v, "second yes", "jti twice", "alice", edJWT(k.ed, `{"alg":"EdDSA","kid":"`+kidEd+`"}`,
		fmt.Sprintf(`{"jid":"alice@example.org","iat":%d,"exp":%d,"jti":"other","jti":%q}`, jwtNow, jwtNow+60, jti)))
	// Ed25519: S + L does not verify (Go refuses a non-canonical S).
	edTok := signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, claims("alice", "example.org", jwtNow))
	ep := strings.Split(edTok, ".")
	esig, _ := base64.RawURLEncoding.DecodeString(ep[2])
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	sLE := reverse(esig[32:])
	sPlus := new(big.Int).Add(new(big.Int).SetBytes(sLE), l)
	if sPlus.BitLen() <= 256 {
		mal := append(append([]byte{}, esig[:32]...), reverse(sPlus.FillBytes(make([]byte, 32)))...)
		refuse(v, "second yes", "Ed25519 S+L", "alice", ep[0]+"."+ep[1]+"."+base64.RawURLEncoding.EncodeToString(mal))
	}
	if r := v.Verify(ctx, "alice", "example.org", edTok); !r.OK() {
		t.Fatalf("EdDSA after its malleated twin: %s", r.Reason)
	}
	total := 0
	for kind, n := range counts {
		t.Logf("%s: %d variants refused", kind, n)
		total += n
	}
	t.Logf("in all: %d", total)
}

func reverse(b []byte) []byte {
	r := make([]byte, len(b))
	for i := range b {
		r[len(b)-1-i] = b[i]
	}
	return r
}

func sha256Sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// asn1Sig is the DER of an ECDSA signature (r, s).
func asn1Sig(r, s []byte) []byte {
	enc := func(b []byte) []byte {
		b = new(big.Int).SetBytes(b).Bytes()
		if b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return append([]byte{2, byte(len(b))}, b...)
	}
	body := append(enc(r), enc(s)...)
	return append([]byte{0x30, byte(len(body))}, body...)
}
