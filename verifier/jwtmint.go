package verifier

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// DefaultJWTMintLifetime is the lifetime of the JWTs MintJWT makes unless
// told otherwise: exp is iat plus 60 s.
const DefaultJWTMintLifetime = 60 * time.Second

// maxSigningKey bounds a signing key's file: a 4096-bit RSA private JWK is
// about 3 KiB.
const maxSigningKey = 64 << 10

// SigningKey is an application's private key (or symmetric key) for
// minting JWTs.
type SigningKey struct {
	key any    // []byte, *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey
	pub any    // what verifies: the public key, or the symmetric key
	kid string // the JWK's kid, if any
	alg string // the JWK's alg, or the key's usual one
}

// ParseSigningKey parses a key to mint JWTs with, in either form:
//
//   - a private JWK (RFC 7517): kty RSA, EC (P-256, P-384, P-521) or OKP
//     (Ed25519) with its private member "d", or kty oct with the
//     symmetric key in "k"; its "kid" and "alg", if any, go into the JWTs;
//   - a PEM "PRIVATE KEY" block (PKCS #8, what openssl genpkey and
//     Python's cryptography write): RSA, ECDSA or Ed25519.
//
// Its errors never quote the key.
func ParseSigningKey(data []byte) (*SigningKey, error) {
	if len(data) > maxSigningKey {
		return nil, verr("the signing key is longer than %d bytes", maxSigningKey)
	}
	t := bytes.TrimSpace(data)
	var k SigningKey
	switch {
	case bytes.HasPrefix(t, []byte("{")):
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(t); err != nil || !validJWK(&jwk) {
			return nil, verr("the signing key is not a valid JWK")
		}
		k.key, k.kid, k.alg = jwk.Key, jwk.KeyID, jwk.Algorithm
		if jwk.IsPublic() {
			return nil, verr("the signing key is a public JWK: minting needs the private key (with \"d\")")
		}
	case bytes.HasPrefix(t, []byte("-----BEGIN")):
		b, _ := pem.Decode(t)
		switch {
		case b == nil:
			return nil, verr("the signing key is not PEM")
		case b.Type != "PRIVATE KEY":
			return nil, verr("the signing key is a PEM %q block: a PKCS #8 \"PRIVATE KEY\" is needed", b.Type)
		}
		key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, verr("the signing key is not a PKCS #8 private key")
		}
		k.key = key
	default:
		return nil, verr("the signing key is neither a JWK (JSON) nor a PEM private key")
	}
	switch key := k.key.(type) {
	case []byte:
		if len(key) < minHMACKey {
			return nil, verr("the signing key is a symmetric key of %d bytes: at least %d", len(key), minHMACKey)
		}
		k.pub = key
	case *rsa.PrivateKey:
		if bits := key.N.BitLen(); bits < minRSABits {
			return nil, verr("the signing key is an RSA key of %d bits: at least %d", bits, minRSABits)
		}
		k.pub = key.Public()
	case *ecdsa.PrivateKey:
		k.pub = key.Public()
	case ed25519.PrivateKey:
		k.pub = key.Public()
	default:
		return nil, verr("the signing key is of a type that cannot sign JWTs")
	}
	if k.alg == "" {
		k.alg = usualAlg(k.pub)
	}
	if k.alg == "" || !keyFits(k.alg, k.pub) {
		return nil, verr("the signing key fits no JWT algorithm this verifier allows")
	}
	return &k, nil
}

// usualAlg is the algorithm a key signs with unless told otherwise.
func usualAlg(pub any) string {
	switch p := pub.(type) {
	case []byte:
		return "HS256"
	case *rsa.PublicKey:
		return "RS256"
	case ed25519.PublicKey:
		return "EdDSA"
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return "ES256"
		case elliptic.P384():
			return "ES384"
		case elliptic.P521():
			return "ES512"
		}
	}
	return ""
}

// KeyID returns the key's kid ("" if it has none).
func (k *SigningKey) KeyID() string { return k.kid }

// Algorithm returns the algorithm the key signs with by default.
func (k *SigningKey) Algorithm() string { return k.alg }

// PublicJWK returns the JWK that verifies what the key signs, to publish
// in a host's key set: the public key (the symmetric key itself for an
// oct key, which must then be kept as secret as the signing key).
func (k *SigningKey) PublicJWK() ([]byte, error) {
	b, err := json.Marshal(jose.JSONWebKey{Key: k.pub, KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
	if err != nil {
		return nil, &Error{Msg: "public JWK: " + err.Error(), Err: err}
	}
	return b, nil
}

// JWTClaims say what MintJWT puts in a JWT besides iat, exp and jti.
type JWTClaims struct {
	User, Host string // the JID claim is User@Host
	// JIDClaim names the claim that holds the JID (DefaultJIDClaim if
	// empty).
	JIDClaim string
	// Issuer and Audience, if set, are "iss" and "aud".
	Issuer, Audience string
	// Lifetime is exp - iat (DefaultJWTMintLifetime if 0): a whole number
	// of seconds, up to MaxJWTLifetime.
	Lifetime time.Duration
	// Alg, if set, is the algorithm (it must fit the key); KeyID, if set,
	// the "kid" (else the JWK's own, if any).
	Alg, KeyID string
}

// MintJWT returns a JWT for c.User@c.Host signed with key (see
// ParseSigningKey), issued at now: "iat" now, "exp" now plus the
// lifetime, a "jti" of 16 bytes from crypto/rand, the JID claim, and "iss"
// and "aud" if set; "kid" in the header if the key or c has one.
func MintJWT(key []byte, c JWTClaims, now time.Time) (string, error) {
	k, err := ParseSigningKey(key)
	if err != nil {
		return "", err
	}
	return k.Mint(c, now)
}

// Mint is MintJWT with a parsed key.
func (k *SigningKey) Mint(c JWTClaims, now time.Time) (string, error) {
	if !validUser(c.User) {
		return "", errBadUser()
	}
	if err := ValidateHostName(c.Host); err != nil {
		return "", err
	}
	c.JIDClaim = cmp.Or(c.JIDClaim, DefaultJIDClaim)
	if err := checkJIDClaim(c.JIDClaim); err != nil {
		return "", err
	}
	if c.Lifetime == 0 {
		c.Lifetime = DefaultJWTMintLifetime
	}
	if c.Lifetime < time.Second || c.Lifetime > MaxJWTLifetime || c.Lifetime%time.Second != 0 {
		return "", verr("a JWT's lifetime must be a whole number of seconds, 1 s to %v, not %v", MaxJWTLifetime, c.Lifetime)
	}
	alg := k.alg
	if c.Alg != "" {
		alg = c.Alg
	}
	method := jwt.GetSigningMethod(alg)
	if method == nil || !keyFits(alg, k.pub) {
		return "", verr("the signing key cannot sign with alg %q", alg)
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", &Error{Msg: "jti: " + err.Error(), Err: err}
	}
	claims := jwt.MapClaims{
		c.JIDClaim: c.User + "@" + c.Host,
		"iat":      now.Unix(),
		"exp":      now.Unix() + int64(c.Lifetime/time.Second),
		"jti":      base64.RawURLEncoding.EncodeToString(id[:]),
	}
	if c.Issuer != "" {
		claims["iss"] = c.Issuer
	}
	if c.Audience != "" {
		claims["aud"] = c.Audience
	}
	t := jwt.NewWithClaims(method, claims)
	if kid := cmp.Or(c.KeyID, k.kid); kid != "" {
		t.Header["kid"] = kid
	}
	s, err := t.SignedString(k.key)
	if err != nil {
		return "", &Error{Msg: "signing the JWT: " + err.Error(), Err: err}
	}
	return s, nil
}
