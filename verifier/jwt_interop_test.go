package verifier

// Interoperability with Debian's python3-jwt (PyJWT) and
// python3-cryptography: JWTs an application makes in Python verify here,
// and JWTs MintJWT makes verify in PyJWT.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/replay"
)

// debianPython is Debian's interpreter, whose packages the tests use.
const debianPython = "/usr/bin/python3"

// requirePython skips the test if Debian's Python or one of the modules
// is missing, or fails it when TOKENAUTHD_E2E=1 (scripts/test), where
// every peer must be there. Under -short it skips the test: that tier runs
// without real peers.
func requirePython(t *testing.T, modules ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs Debian's Python and PyJWT, real peers (./scripts/test runs them)")
	}
	for _, m := range modules {
		if out, err := exec.Command(debianPython, "-c", "import "+m).CombinedOutput(); err != nil {
			if os.Getenv("TOKENAUTHD_E2E") == "1" {
				t.Fatalf("required test peer python:%s is missing: %v %s (scripts/test installs it)", m, err, out)
			}
			t.Skipf("test peer python:%s missing; run scripts/test to install it", m)
		}
	}
}

// runPython runs script with Debian's Python, args after it, stdin in,
// and returns its stdout.
func runPython(t *testing.T, script string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(debianPython, append([]string{"-c", script}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	return out
}

// pyMint makes, with PyJWT and cryptography, an Ed25519, a P-256 and an
// RSA key, their JWK Set, private keys as PKCS #8 PEM, and JWTs: good
// ones of each algorithm and bad ones of each kind, for user@host at the
// Unix time given.
const pyMint = `
import base64, json, sys, uuid
import jwt
from jwt.algorithms import OKPAlgorithm, ECAlgorithm, RSAAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, ec, rsa

now = int(sys.argv[1])
keys = {
    "EdDSA": ("py-ed", ed25519.Ed25519PrivateKey.generate(), OKPAlgorithm),
    "ES256": ("py-ec", ec.generate_private_key(ec.SECP256R1()), ECAlgorithm),
    "RS256": ("py-rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm),
}
other = ed25519.Ed25519PrivateKey.generate()
jwks = {"keys": []}
pems = {}
for alg, (kid, key, algo) in keys.items():
    jwk = json.loads(algo.to_jwk(key.public_key()))
    if alg == "ES256":
        # RFC 7518 wants both coordinates 32 bytes long; PyJWT 2.6 drops
        # leading zero bytes (once in 128 keys), which go-jose refuses.
        n = key.public_key().public_numbers()
        for c, v in (("x", n.x), ("y", n.y)):
            jwk[c] = base64.urlsafe_b64encode(v.to_bytes(32, "big")).rstrip(b"=").decode()
    jwk["kid"] = kid
    jwks["keys"].append(jwk)
    pems[alg] = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()

def claims(**kw):
    c = {"jid": "alice@example.org", "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())}
    for k, v in kw.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c

tokens = []
def add(name, want, alg, c, key=None, kid=None):
    k = keys[alg]
    tok = jwt.encode(c, key if key is not None else k[1], algorithm=alg,
                     headers={"kid": kid if kid is not None else k[0]})
    tokens.append({"name": name, "want": want, "token": tok})

for alg in keys:
    add(alg, "accepted", alg, claims())
    add(alg + " without iat", "accepted", alg, claims(iat=None))
    add(alg + " with nbf and aud", "accepted", alg, claims(nbf=now, aud=["xmpp", "web"]))
    add(alg + " expired", "expired", alg, claims(iat=now - 600, exp=now - 300))
    add(alg + " not yet valid", "not_yet_valid", alg, claims(nbf=now + 120))
    add(alg + " long-lived", "lifetime_too_long", alg, claims(exp=now + 3600))
    add(alg + " without jti", "missing_jti", alg, claims(jti=None))
    add(alg + " for bob", "wrong_jid", alg, claims(jid="bob@example.org"))
    add(alg + " of an unknown kid", "unknown_key", alg, claims(), kid="py-old")
add("EdDSA signed by another key", "bad_signature", "EdDSA", claims(), key=other)
add("RS256 as PS256", "accepted", "RS256", claims())
tokens[-1]["token"] = jwt.encode(claims(), keys["RS256"][1], algorithm="PS256", headers={"kid": "py-rsa"})
print(json.dumps({"jwks": jwks, "pems": pems, "tokens": tokens}))
`

// pyVerify decodes, with PyJWT, each JWT of stdin's JSON list
// [[alg, public key PEM or JWK, token], ...] requiring exp, iat and jti,
// and prints each one's claims.
const pyVerify = `
import json, sys
import jwt
from jwt.algorithms import OKPAlgorithm, ECAlgorithm, RSAAlgorithm
out = []
for alg, jwk, token in json.load(sys.stdin):
    algo = {"EdDSA": OKPAlgorithm, "ES256": ECAlgorithm, "RS256": RSAAlgorithm}[alg]
    key = algo.from_jwk(jwk)
    header = jwt.get_unverified_header(token)
    c = jwt.decode(token, key, algorithms=[alg], options={"require": ["exp", "iat", "jti"]})
    out.append({"header": header, "claims": c})
print(json.dumps(out))
`

// JWTs made by PyJWT with keys made by cryptography verify, and are
// refused for what they are.
func TestJWTInteropPyJWT(t *testing.T) {
	requirePython(t, "jwt", "cryptography")
	var made struct {
		JWKS   json.RawMessage   `json:"jwks"`
		PEMs   map[string]string `json:"pems"`
		Tokens []struct {
			Name, Want, Token string
		} `json:"tokens"`
	}
	if err := json.Unmarshal(runPython(t, pyMint, nil, "1700000000"), &made); err != nil {
		t.Fatal(err)
	}
	j := &JWT{KeySet: made.JWKS, Algorithms: []string{"EdDSA", "ES256", "RS256", "PS256"}, JIDClaim: "jid",
		MaxLifetime: DefaultJWTMaxLifetime, Leeway: DefaultJWTLeeway}
	v, _ := newJWTTest(t, j)
	if len(made.Tokens) != 29 {
		t.Fatalf("python made %d JWTs, want 29", len(made.Tokens))
	}
	accepted := 0
	for _, tok := range made.Tokens {
		r := v.Verify(context.Background(), "alice", "example.org", tok.Token)
		if string(r.Reason) != tok.Want {
			t.Errorf("%s: %s (%v), want %s", tok.Name, r.Reason, r.Err, tok.Want)
		}
		if r.OK() {
			accepted++
			if r := v.Verify(context.Background(), "alice", "example.org", tok.Token); r.Reason != Replayed {
				t.Errorf("%s again: %s, want replayed", tok.Name, r.Reason)
			}
		}
	}
	if accepted != 10 {
		t.Errorf("%d accepted, want 10", accepted)
	}

	// The other way: MintJWT with the PEM keys Python wrote, verified by
	// PyJWT with the public JWKs, now (PyJWT checks exp on its own clock).
	var keys struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(made.JWKS, &keys); err != nil {
		t.Fatal(err)
	}
	var in [][3]string
	for i, alg := range []string{"EdDSA", "ES256", "RS256"} {
		tok, err := MintJWT([]byte(made.PEMs[alg]), JWTClaims{User: "alice", Host: "example.org", KeyID: keys.Keys[i]["kid"].(string)}, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		jwk, _ := json.Marshal(keys.Keys[i])
		in = append(in, [3]string{alg, string(jwk), tok})
	}
	stdin, _ := json.Marshal(in)
	var decoded []struct {
		Header map[string]any `json:"header"`
		Claims map[string]any `json:"claims"`
	}
	if err := json.Unmarshal(runPython(t, pyVerify, stdin), &decoded); err != nil {
		t.Fatal(err)
	}
	for i, d := range decoded {
		c := d.Claims
		jti, _ := c["jti"].(string)
		iat, _ := c["iat"].(float64)
		exp, _ := c["exp"].(float64)
		if d.Header["alg"] != in[i][0] || d.Header["kid"] != keys.Keys[i]["kid"] || c["jid"] != "alice@example.org" ||
			exp-iat != 60 || len(jti) != 22 {
			t.Errorf("%s: PyJWT read header %v, claims %v", in[i][0], d.Header, c)
		}
	}
	if len(decoded) != 3 {
		t.Errorf("PyJWT decoded %d JWTs, want 3", len(decoded))
	}
	// And the store keeps what it recorded: one record per accepted JWT.
	if n := v.store.(*replay.Memory).Len(); n != 10 {
		t.Errorf("store holds %d records, want 10", n)
	}
}
