package verifier

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// KeySet is a parsed JWK Set: the keys that verify a host's JWTs, by kid.
// It is immutable.
type KeySet struct {
	keys    map[string]*jwtKey // by kid
	only    *jwtKey            // the set's only key, nil if it has several
	kids    []string           // the kids of the keys kept, in the set's order
	skipped []string           // why keys of a fetched set were left out
}

// Kids returns the kids of the set's keys, in the set's order ("" for the
// only key of a set without kid).
func (s *KeySet) Kids() []string { return slices.Clone(s.kids) }

// Skipped says, for each key ParseKeySet left out, which and why.
func (s *KeySet) Skipped() []string { return slices.Clone(s.skipped) }

// KeySource gives the key set of a host whose keys are fetched from an
// identity provider (JWT.Keys). The verifier does no I/O: the source
// fetches, and the verifier only asks it.
type KeySource interface {
	// KeySet returns the set to verify with now, or an error saying why
	// no set may be used: none was fetched yet, or the last one is too
	// old. It may wait, within ctx, for a fetch under way. Its error never
	// holds a secret.
	KeySet(ctx context.Context) (*KeySet, error)
	// Refresh is asked when a JWT names a kid that set lacks. It returns
	// the set to verify with: one fetched again, if the source's rules
	// allow a fetch now (it may wait, within ctx), or else set.
	Refresh(ctx context.Context, set *KeySet) *KeySet
}

// ParseKeySet parses a key set fetched for the host's settings j (its
// algorithms): a JWK Set of public keys. Keys that cannot verify the
// host's JWTs (of another use, algorithm or type, without kid in a set of
// several, RSA under 2048 bits) are left out, and said in Skipped; a set
// with a private or symmetric key is refused whole (whoever can fetch it
// could sign), as is one with no usable key, more than MaxFetchedKeys, or
// two keys of one kid. Its errors never quote a key.
func (j *JWT) ParseKeySet(data []byte) (*KeySet, error) {
	return parseKeySet(j.Algorithms, data, true)
}

// keyError is why a key of a fetched set is left out; other errors refuse
// the whole set.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

// skip returns a keyError: a key that a fetched set may hold but that
// cannot verify, which a configured set may not hold.
func skip(format string, a ...any) error { return &keyError{fmt.Sprintf(format, a...)} }

// parseKeySet parses a JWK Set with go-jose and keeps its keys by kid;
// fetched, it leaves out what parseKey finds unusable (a keyError).
func parseKeySet(algs []string, data []byte, fetched bool) (*KeySet, error) {
	// Each key apart, to name the one that fails; its members apart, to
	// say what is wrong without quoting a secret.
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil || set.Keys == nil {
		return nil, verr("the JWT key set is not a JWK Set: a JSON object with a \"keys\" array")
	}
	limit := MaxJWTKeys
	if fetched {
		limit = MaxFetchedKeys
	}
	switch n := len(set.Keys); {
	case n == 0:
		return nil, verr("the JWT key set has no key")
	case n > limit:
		return nil, verr("the JWT key set has %d keys: at most %d", n, limit)
	}
	ks := &KeySet{keys: map[string]*jwtKey{}}
	var last *jwtKey
	for i, raw := range set.Keys {
		k, err := ks.parseKey(algs, i, raw, len(set.Keys), fetched)
		var ke *keyError
		errors.As(err, &ke)
		switch {
		case fetched && ke != nil:
			ks.skipped = append(ks.skipped, ke.msg)
			continue
		case ke != nil:
			return nil, verr("%s", ke.msg)
		case err != nil:
			return nil, err
		}
		last = k
		ks.kids = append(ks.kids, k.kid)
		if k.named {
			ks.keys[k.kid] = k
		}
	}
	switch {
	case len(ks.kids) == 0:
		return nil, verr("no key of the JWT key set can verify JWTs: %s", strings.Join(ks.skipped, "; "))
	case len(set.Keys) == 1:
		ks.only = last
	}
	return ks, nil
}

// parseKey parses the i-th key of a set of n.
func (s *KeySet) parseKey(algs []string, i int, raw json.RawMessage, n int, fetched bool) (*jwtKey, error) {
	var m jwkMembers
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, verr("JWT key %d is not a JSON object with string members kty, kid, alg, use", i)
	}
	name := fmt.Sprintf("JWT key %d", i)
	if m.Kid != nil {
		if len(*m.Kid) > 256 {
			return nil, skip("%s: kid longer than 256 bytes", name)
		}
		name = fmt.Sprintf("JWT key %d (kid %q)", i, *m.Kid)
	}
	switch {
	case m.D != nil:
		return nil, verr("%s is a private key: the set must hold the public key only", name)
	case fetched && m.Kty == "oct":
		return nil, verr("%s is a symmetric key, in a set fetched from a URL: whoever can fetch it could sign", name)
	case m.Kid != nil && s.keys[*m.Kid] != nil:
		return nil, verr("%s: kid used by another key of the set", name)
	case m.Kid == nil && n > 1:
		return nil, skip("%s has no kid: every key of a set of several needs one, that JWTs name", name)
	case m.Kid != nil && *m.Kid == "" && n > 1:
		return nil, skip("%s has an empty kid", name)
	case m.Use != "" && m.Use != "sig":
		return nil, skip("%s is for use %q: only \"sig\" keys verify JWTs", name, m.Use)
	case m.KeyOps != nil && !slices.Contains(m.KeyOps, "verify"):
		return nil, skip("%s: its key_ops do not include \"verify\"", name)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		if m.Kty == "oct" { // go-jose's errors do not quote keys, but a secret's is not worth the risk
			return nil, verr("%s: not a valid symmetric JWK (kty oct, k the base64url of the key)", name)
		}
		return nil, skip("%s: not a valid JWK: %s", name, strings.TrimPrefix(err.Error(), "go-jose/go-jose: "))
	}
	if !validJWK(&jwk) {
		return nil, skip("%s: not a valid JWK", name)
	}
	k := &jwtKey{alg: jwk.Algorithm, key: jwk.Key}
	if m.Kid != nil {
		k.kid, k.named = *m.Kid, true
	}
	if err := checkKey(name, m.Kty, k, algs); err != nil {
		return nil, err
	}
	return k, nil
}

// checkKey checks that k can verify JWTs of one of algs, strongly enough.
func checkKey(name, kty string, k *jwtKey, algs []string) error {
	switch key := k.key.(type) {
	case []byte:
		if len(key) < minHMACKey {
			return verr("%s: a symmetric key of %d bytes: at least %d", name, len(key), minHMACKey)
		}
	case *rsa.PublicKey:
		if bits := key.N.BitLen(); bits < minRSABits {
			return skip("%s: an RSA key of %d bits: at least %d", name, bits, minRSABits)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return skip("%s: a key of type %q cannot verify JWTs", name, kty)
	}
	if k.alg != "" && !slices.Contains(algs, k.alg) {
		return skip("%s is for alg %q, which the JWT algorithms do not allow", name, k.alg)
	}
	if !slices.ContainsFunc(algs, k.fits) {
		return skip("%s, of kty %q, fits none of the JWT algorithms %s", name, kty, strings.Join(algs, ", "))
	}
	return nil
}
