package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/jwks"
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

// FetchedKeys are a host's settings for JWT keys fetched from an identity
// provider: keys_url, or discovery with issuer; keys_ca_file,
// keys_max_stale.
type FetchedKeys = jwks.Spec

// The bounds of keys_max_stale, in seconds, and its default.
const (
	minKeysMaxStale     = 10
	maxKeysMaxStale     = 30 * 24 * 3600
	defaultKeysMaxStale = jwks.DefaultMaxStale
)

// buildJWT validates a host's jwt section (key is its name,
// hosts."h".jwt) and reads its key set as a secret file is read: regular,
// bounded, written by its owner only; or, for keys fetched from a
// provider, returns their settings. It returns a warning if the set holds
// a symmetric key and every user may read the file. Its errors name the
// key, never a key of the set.
func buildJWT(key string, js *jwtSection, o Options) (*verifier.JWT, *FetchedKeys, string, error) {
	j := &verifier.JWT{
		Algorithms:  js.Algorithms,
		JIDClaim:    verifier.DefaultJIDClaim,
		Issuer:      js.Issuer,
		Audience:    js.Audience,
		MaxLifetime: verifier.DefaultJWTMaxLifetime,
		Leeway:      verifier.DefaultJWTLeeway,
	}
	if err := buildJWTClaims(key, js, j); err != nil {
		return nil, nil, "", err
	}
	fetched, err := buildFetchedKeys(key, js)
	if err != nil {
		return nil, nil, "", err
	}
	if fetched != nil {
		if err := j.ValidateFetched(); err != nil {
			return nil, nil, "", fmt.Errorf("%s: %s", key, verifier.Detail(err))
		}
		return j, fetched, "", nil
	}
	path, err := credentialPath(js.KeysFile, o)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s.keys_file: %w", key, err)
	}
	data, warning, err := readTrustedFile(path, maxKeysFile, o.owner())
	if err != nil {
		var perr *fs.PathError
		if errors.As(err, &perr) {
			return nil, nil, "", fmt.Errorf("%s.keys_file: %w", key, err)
		}
		return nil, nil, "", fmt.Errorf("%s.keys_file: %s: %w", key, path, err)
	}
	j.KeySet = data
	if err := j.Validate(); err != nil {
		return nil, nil, "", fmt.Errorf("%s: %s (keys_file %s)", key, verifier.Detail(err), path)
	}
	if warning != "" && j.HasSymmetricKey() {
		return j, nil, fmt.Sprintf("%s: %s (it holds a symmetric key, a secret)", path, warning), nil
	}
	return j, nil, "", nil
}

// buildJWTClaims validates what a JWT must hold: the algorithms, the
// claim naming the user, the lifetime and the leeway.
func buildJWTClaims(key string, js *jwtSection, j *verifier.JWT) error {
	switch {
	case js.Algorithms == nil:
		j.Algorithms = verifier.DefaultJWTAlgorithms()
	case len(js.Algorithms) == 0:
		return fmt.Errorf("%s.algorithms: empty: list the algorithms your application signs with", key)
	}
	switch {
	case js.JIDClaim != nil && js.UserClaim != nil:
		return fmt.Errorf("%s: jid_claim and user_claim: set one (user_claim: a claim that holds the local part only)", key)
	case js.JIDClaim != nil && *js.JIDClaim == "":
		return fmt.Errorf("%s.jid_claim: empty: name the claim that holds user@host (default %q)", key, verifier.DefaultJIDClaim)
	case js.JIDClaim != nil:
		j.JIDClaim = *js.JIDClaim
	case js.UserClaim != nil && *js.UserClaim == "":
		return fmt.Errorf("%s.user_claim: empty: name the claim that holds the user's local part (e.g. \"preferred_username\")", key)
	case js.UserClaim != nil:
		j.UserClaim = *js.UserClaim
	}
	if n := js.MaxLifetime; n != nil {
		if *n < 1 || *n > maxJWTLifetimeSeconds {
			return fmt.Errorf("%s.max_lifetime: must be 1 to %d seconds, not %d", key, maxJWTLifetimeSeconds, *n)
		}
		j.MaxLifetime = time.Duration(*n) * time.Second
	}
	if n := js.Leeway; n != nil {
		if *n < 0 || *n > maxJWTLeewaySeconds {
			return fmt.Errorf("%s.leeway: must be 0 to %d seconds, not %d", key, maxJWTLeewaySeconds, *n)
		}
		j.Leeway = time.Duration(*n) * time.Second
	}
	return nil
}

// buildFetchedKeys validates where the keys are: keys_file, keys_url, or
// discovery with issuer, exactly one. It returns nil for keys_file.
func buildFetchedKeys(key string, js *jwtSection) (*FetchedKeys, error) {
	n := 0
	for _, set := range []bool{js.KeysFile != "", js.KeysURL != "", js.Discovery} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, fmt.Errorf("%s.keys_file is missing: the JWK Set that verifies the host's JWTs (or keys_url, or discovery = true with issuer)", key)
	case n > 1:
		return nil, fmt.Errorf("%s: keys_file, keys_url and discovery = true are alternatives: set one", key)
	case js.KeysFile != "":
		if js.KeysCAFile != "" || js.KeysMaxStale != nil {
			return nil, fmt.Errorf("%s: keys_ca_file and keys_max_stale are for keys fetched (keys_url, or discovery), not keys_file", key)
		}
		return nil, nil
	}
	f := &FetchedKeys{URL: js.KeysURL, Discovery: js.Discovery, Issuer: js.Issuer, MaxStale: defaultKeysMaxStale}
	if js.Discovery {
		if js.Issuer == "" {
			return nil, fmt.Errorf("%s: discovery = true needs issuer: the provider's issuer URL, whose discovery document names the keys", key)
		}
		if err := jwks.CheckIssuer(js.Issuer); err != nil {
			return nil, fmt.Errorf("%s.issuer: with discovery, %w", key, err)
		}
	} else if err := jwks.CheckURL(js.KeysURL); err != nil {
		return nil, fmt.Errorf("%s.keys_url: %w", key, err)
	}
	if js.KeysCAFile != "" {
		if !filepath.IsAbs(js.KeysCAFile) {
			return nil, fmt.Errorf("%s.keys_ca_file: %q is not an absolute path", key, js.KeysCAFile)
		}
		f.CAFile = filepath.Clean(js.KeysCAFile)
	}
	if n := js.KeysMaxStale; n != nil {
		if *n < minKeysMaxStale || *n > maxKeysMaxStale {
			return nil, fmt.Errorf("%s.keys_max_stale: must be %d to %d seconds, not %d", key, minKeysMaxStale, maxKeysMaxStale, *n)
		}
		f.MaxStale = time.Duration(*n) * time.Second
	}
	return f, nil
}
