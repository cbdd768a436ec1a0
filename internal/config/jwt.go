package config

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/tokenauthd/tokenauthd/verifier"
)

// maxKeysFile bounds a JWT key set's file: 16 keys of 4096-bit RSA are
// under 16 KiB.
const maxKeysFile = 64 << 10

// The bounds of max_lifetime and leeway, in seconds.
const (
	maxJWTLifetimeSeconds = int(verifier.MaxJWTLifetime / time.Second)
	maxJWTLeewaySeconds   = int(verifier.MaxJWTLeeway / time.Second)
)

// buildJWT validates a host's jwt section (key is its name,
// hosts."h".jwt) and reads its key set as a secret file is read: regular,
// bounded, written by its owner only. It returns a warning if the set
// holds a symmetric key and every user may read the file. Its errors
// name the key, never a key of the set.
func buildJWT(key string, js *jwtSection, o Options) (*verifier.JWT, string, error) {
	j := &verifier.JWT{
		Algorithms:  js.Algorithms,
		JIDClaim:    verifier.DefaultJIDClaim,
		Issuer:      js.Issuer,
		Audience:    js.Audience,
		MaxLifetime: verifier.DefaultJWTMaxLifetime,
		Leeway:      verifier.DefaultJWTLeeway,
	}
	switch {
	case js.Algorithms == nil:
		j.Algorithms = verifier.DefaultJWTAlgorithms()
	case len(js.Algorithms) == 0:
		return nil, "", fmt.Errorf("%s.algorithms: empty: list the algorithms your application signs with", key)
	}
	if js.JIDClaim != nil {
		if *js.JIDClaim == "" {
			return nil, "", fmt.Errorf("%s.jid_claim: empty: name the claim that holds user@host (default %q)", key, verifier.DefaultJIDClaim)
		}
		j.JIDClaim = *js.JIDClaim
	}
	if n := js.MaxLifetime; n != nil {
		if *n < 1 || *n > maxJWTLifetimeSeconds {
			return nil, "", fmt.Errorf("%s.max_lifetime: must be 1 to %d seconds, not %d", key, maxJWTLifetimeSeconds, *n)
		}
		j.MaxLifetime = time.Duration(*n) * time.Second
	}
	if n := js.Leeway; n != nil {
		if *n < 0 || *n > maxJWTLeewaySeconds {
			return nil, "", fmt.Errorf("%s.leeway: must be 0 to %d seconds, not %d", key, maxJWTLeewaySeconds, *n)
		}
		j.Leeway = time.Duration(*n) * time.Second
	}
	if js.KeysFile == "" {
		return nil, "", fmt.Errorf("%s.keys_file is missing: the JWK Set that verifies the host's JWTs", key)
	}
	path, err := credentialPath(js.KeysFile, o)
	if err != nil {
		return nil, "", fmt.Errorf("%s.keys_file: %w", key, err)
	}
	data, warning, err := readTrustedFile(path, maxKeysFile, o.owner())
	if err != nil {
		var perr *fs.PathError
		if errors.As(err, &perr) {
			return nil, "", fmt.Errorf("%s.keys_file: %w", key, err)
		}
		return nil, "", fmt.Errorf("%s.keys_file: %s: %w", key, path, err)
	}
	j.KeySet = data
	if err := j.Validate(); err != nil {
		return nil, "", fmt.Errorf("%s: %s (keys_file %s)", key, verifier.Detail(err), path)
	}
	if warning != "" && j.HasSymmetricKey() {
		return j, fmt.Sprintf("%s: %s (it holds a symmetric key, a secret)", path, warning), nil
	}
	return j, "", nil
}
