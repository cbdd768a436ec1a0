package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"
)

// maxKeysFile bounds a JWT key set's file: 16 keys of 4096-bit RSA are
// under 16 KiB.
const maxKeysFile = 64 << 10

// JWT is a host's [hosts."name".jwt] section, its defaults filled in and
// its key set read (or, for keys fetched from an identity provider, where
// they are); internal/setup has the verifier check the set and the
// algorithms, and the fetcher's rules check the provider's URL.
type JWT struct {
	// KeysFile is the key set's file, as read ("%d/" expanded); "" when
	// the keys are fetched.
	KeysFile string
	// KeySet is the file's contents: a JWK Set, unchecked; nil when the
	// keys are fetched.
	KeySet []byte
	// Fetched, if not nil, says where the keys are fetched from (keys_url,
	// or discovery with Issuer) instead of keys_file.
	Fetched *FetchedKeys
	// Algorithms is the allowlist of "alg" values; nil when the file
	// names none (the verifier's defaults).
	Algorithms []string
	// JIDClaim names the claim that holds user@host; UserClaim, if set
	// (user_claim), the claim that holds the user's local part instead.
	JIDClaim, UserClaim string
	// Issuer and Audience, if set, are what "iss" must equal and "aud"
	// contain.
	Issuer, Audience string
	// MaxLifetime bounds exp - iat; Leeway is the clock skew allowed.
	MaxLifetime, Leeway time.Duration
	// ReadableByAll, if not "", says that every user may read the key set
	// (and its mode): a warning if the set holds a symmetric key.
	ReadableByAll string
}

// FetchedKeys are a host's settings for JWT keys fetched from an identity
// provider: keys_url, or discovery (with the section's issuer);
// keys_ca_file, keys_max_stale. The URL's scheme and host are checked
// where the fetchers are made (internal/setup, by internal/jwks's rules).
type FetchedKeys struct {
	// URL is keys_url; "" with Discovery.
	URL string
	// Discovery: the keys are at the jwks_uri of the issuer's OpenID
	// Connect discovery document.
	Discovery bool
	// CAFile is keys_ca_file, a clean absolute path ("" for the system's
	// CAs); it is read when the fetcher is made.
	CAFile string
	// MaxStale is keys_max_stale: how long the last set fetched stays in
	// use while fetching fails.
	MaxStale time.Duration
}

// The bounds of keys_max_stale, in seconds.
const (
	minKeysMaxStale = 10
	maxKeysMaxStale = 30 * 24 * 3600
)

// buildJWT validates a host's jwt section (key is its name,
// hosts."h".jwt) and reads its key set as a secret file is read: regular,
// bounded, written by its owner only; or, for keys fetched from a
// provider, takes their settings. Its errors name the key, never a key of
// the set.
func buildJWT(key string, js *jwtSection, o Options) (*JWT, error) {
	j := &JWT{
		Algorithms:  js.Algorithms,
		JIDClaim:    defaultJIDClaim,
		Issuer:      js.Issuer,
		Audience:    js.Audience,
		MaxLifetime: defaultJWTMaxLifetime,
		Leeway:      defaultJWTLeeway,
	}
	if err := buildJWTClaims(key, js, j); err != nil {
		return nil, err
	}
	fetched, err := buildFetchedKeys(key, js)
	if err != nil {
		return nil, err
	}
	if fetched != nil {
		j.Fetched = fetched
		return j, nil
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

// buildJWTClaims validates what a JWT must hold: the algorithms, the
// claim naming the user, the lifetime and the leeway.
func buildJWTClaims(key string, js *jwtSection, j *JWT) error {
	if js.Algorithms != nil && len(js.Algorithms) == 0 {
		return fmt.Errorf("%s.algorithms: empty: list the algorithms your application signs with", key)
	}
	switch {
	case js.JIDClaim != nil && js.UserClaim != nil:
		return fmt.Errorf("%s: jid_claim and user_claim: set one (user_claim: a claim that holds the local part only)", key)
	case js.JIDClaim != nil && *js.JIDClaim == "":
		return fmt.Errorf("%s.jid_claim: empty: name the claim that holds user@host (default %q)", key, defaultJIDClaim)
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
	f := &FetchedKeys{URL: js.KeysURL, Discovery: js.Discovery, MaxStale: defaultKeysMaxStale}
	if js.Discovery && js.Issuer == "" {
		return nil, fmt.Errorf("%s: discovery = true needs issuer: the provider's issuer URL, whose discovery document names the keys", key)
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
