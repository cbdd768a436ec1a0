package config

import (
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// maxKeysFile bounds a JWT key set's file: 16 keys of 4096-bit RSA are
// under 16 KiB.
const maxKeysFile = 64 << 10

// JWT is a host's [hosts."name".jwt] section, its defaults filled in and
// its key set read; internal/setup has the verifier check the set and the
// algorithms.
type JWT struct {
	// KeysFile is the key set's file, as read ("%d/" expanded).
	KeysFile string
	// KeySet is the file's contents: a JWK Set, unchecked.
	KeySet []byte
	// Algorithms is the allowlist of "alg" values; nil when the file
	// names none (the verifier's defaults).
	Algorithms []string
	// JIDClaim names the claim that holds user@host.
	JIDClaim string
	// Issuer and Audience, if set, are what "iss" must equal and "aud"
	// contain.
	Issuer, Audience string
	// MaxLifetime bounds exp - iat; Leeway is the clock skew allowed.
	MaxLifetime, Leeway time.Duration
	// ReadableByAll, if not "", says that every user may read the key set
	// (and its mode): a warning if the set holds a symmetric key.
	ReadableByAll string
}

// buildJWT validates a host's jwt section (key is its name,
// hosts."h".jwt) and reads its key set as a secret file is read: regular,
// bounded, written by its owner only. Its errors name the key, never a
// key of the set.
func buildJWT(key string, js *jwtSection, o Options) (*JWT, error) {
	j := &JWT{
		Algorithms:  js.Algorithms,
		JIDClaim:    defaultJIDClaim,
		Issuer:      js.Issuer,
		Audience:    js.Audience,
		MaxLifetime: defaultJWTMaxLifetime,
		Leeway:      defaultJWTLeeway,
	}
	if js.Algorithms != nil && len(js.Algorithms) == 0 {
		return nil, fmt.Errorf("%s.algorithms: empty: list the algorithms your application signs with", key)
	}
	if js.JIDClaim != nil {
		if *js.JIDClaim == "" {
			return nil, fmt.Errorf("%s.jid_claim: empty: name the claim that holds user@host (default %q)", key, defaultJIDClaim)
		}
		j.JIDClaim = *js.JIDClaim
	}
	if n := js.MaxLifetime; n != nil {
		if *n < 1 || *n > maxJWTLifetimeSeconds {
			return nil, fmt.Errorf("%s.max_lifetime: must be 1 to %d seconds, not %d", key, maxJWTLifetimeSeconds, *n)
		}
		j.MaxLifetime = time.Duration(*n) * time.Second
	}
	if n := js.Leeway; n != nil {
		if *n < 0 || *n > maxJWTLeewaySeconds {
			return nil, fmt.Errorf("%s.leeway: must be 0 to %d seconds, not %d", key, maxJWTLeewaySeconds, *n)
		}
		j.Leeway = time.Duration(*n) * time.Second
	}
	if js.KeysFile == "" {
		return nil, fmt.Errorf("%s.keys_file is missing: the JWK Set that verifies the host's JWTs", key)
	}
	path, err := credentialPath(js.KeysFile, o)
	if err != nil {
		return nil, fmt.Errorf("%s.keys_file: %w", key, err)
	}
	data, warning, err := readTrustedFile(path, maxKeysFile, o.owner())
	if err != nil {
		var perr *fs.PathError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("%s.keys_file: %w", key, err)
		}
		return nil, fmt.Errorf("%s.keys_file: %s: %w", key, path, err)
	}
	j.KeysFile, j.KeySet, j.ReadableByAll = path, data, warning
	return j, nil
}
