// Package setup makes a configuration file's values (internal/config's,
// plain and checked as far as the file goes) into what the libraries take:
// the protocol's Mode and the verifier's Config, having the verifier check
// what only it knows (the token parameters, each host's name, its OTP
// seeds, its JWK Set and algorithms) and internal/jwks what only it knows
// (an identity provider's URL, for keys fetched). It reads no file but
// through config (Load, Parse), fetches nothing and opens no replay store
// (internal/daemon does both) and serves nothing; its errors name the key,
// never a secret.
package setup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/jwks"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// Config is a configuration made ready for the libraries: the file's
// values, and what they make.
type Config struct {
	*config.Config
	// Mode is the framing the file's protocol names.
	Mode protocol.Mode
	// Verifier is what NewVerifier makes a verifier of, without its store
	// (and NewOffline one that needs none):
	// the token parameters (with the replay TTL the hosts' JWTs need) and
	// every host's secrets, normalised seeds and JWT settings.
	Verifier verifier.Config
	// FetchedKeys are, by host, where the hosts whose JWT keys are fetched
	// from an identity provider fetch them: their Verifier.Hosts[h].JWT
	// has no KeySet, and takes a key source (verifier.JWT.Keys, a
	// jwks.Fetcher the daemon makes); NewVerifier gives one that never
	// has keys to those that have none.
	FetchedKeys map[string]jwks.Spec
	// warnings are the key sets' warnings (a symmetric key every user may
	// read).
	warnings []string
}

// Load reads the configuration file at path (config.Load) and makes it
// ready (New).
func Load(path string, o config.Options) (*Config, error) {
	c, err := config.Load(path, o)
	if err != nil {
		return nil, err
	}
	return New(c)
}

// Parse is Load for a file's contents (config.Parse).
func Parse(path string, data []byte, o config.Options) (*Config, error) {
	c, err := config.Parse(path, data, o)
	if err != nil {
		return nil, err
	}
	return New(c)
}

// New checks what the libraries know of a loaded configuration and makes
// their values of it. Its errors start with the file's path, as
// config.Load's do.
func New(c *config.Config) (*Config, error) {
	s := &Config{Config: c}
	if err := s.build(); err != nil {
		return nil, config.ShortError(fmt.Errorf("%s: %w", c.Path, err))
	}
	return s, nil
}

// build fills s's Mode and Verifier from its file's values.
func (s *Config) build() error {
	var err error
	if s.Mode, err = protocol.ParseMode(s.Protocol); err != nil {
		return fmt.Errorf("protocol: %q is not auto, ejabberd or generic", s.Protocol)
	}
	t := s.Token
	p := verifier.Params{Digits: t.Digits, Interval: t.Interval, Drift: t.Drift, NonceDigits: t.NonceDigits}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("[token]: %s", verifier.Detail(err))
	}
	hosts := make(map[string]verifier.Host, len(s.Hosts))
	s.FetchedKeys = map[string]jwks.Spec{}
	for _, name := range slices.Sorted(maps.Keys(s.Hosts)) {
		h, warning, err := host(name, s.Hosts[name])
		if err != nil {
			return err
		}
		if f := s.Hosts[name].JWT; f != nil && f.Fetched != nil {
			spec, err := fetchedKeys(fmt.Sprintf("hosts.%q.jwt", name), f)
			if err != nil {
				return err
			}
			s.FetchedKeys[name] = spec
		}
		if warning != "" {
			s.warnings = append(s.warnings, warning)
		}
		if h.JWT != nil {
			// The replay store keeps every record as long as the
			// longest-lived JWT needs.
			p.MinReplayTTL = max(p.MinReplayTTL, h.JWT.ReplayTTL())
		}
		hosts[name] = h
	}
	s.Verifier = verifier.Config{Params: p, Hosts: hosts}
	s.warnings = append(s.warnings, sharedUserClaims(s.Hosts)...)
	return nil
}

// sharedUserClaims warns of hosts that read the user from user_claim of
// JWTs whose keys come from one source: the host is not in such a JWT, so
// each takes the others' unless each names an audience of its own.
func sharedUserClaims(hosts map[string]config.Host) []string {
	bySource := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(hosts)) {
		j := hosts[name].JWT
		if j == nil || j.UserClaim == "" {
			continue
		}
		source := "keys_file " + j.KeysFile
		if f := j.Fetched; f != nil {
			source = "keys_url " + f.URL
			if f.Discovery {
				source = "issuer " + j.Issuer
			}
		}
		bySource[source] = append(bySource[source], name)
	}
	var warnings []string
	for _, source := range slices.Sorted(maps.Keys(bySource)) {
		names := bySource[source]
		audiences := map[string]bool{}
		for _, n := range names {
			audiences[hosts[n].JWT.Audience] = true
		}
		if len(names) > 1 && (audiences[""] || len(audiences) < len(names)) {
			warnings = append(warnings, fmt.Sprintf("hosts %q read the user from user_claim of JWTs signed by one %s: a JWT for one is taken by the others too (the host is not in it); give each host an audience of its own", names, source))
		}
	}
	return warnings
}

// host makes a host section the verifier's, and returns the warning of a
// key set, if any.
func host(name string, hc config.Host) (verifier.Host, string, error) {
	key := fmt.Sprintf("hosts.%q", name)
	if err := verifier.ValidateHostName(name); err != nil {
		return verifier.Host{}, "", fmt.Errorf("%s: %s", key, verifier.Detail(err))
	}
	h := verifier.Host{TokenSecrets: hc.TokenSecrets, IsUser: hc.IsUser, SeenFor: hc.SeenFor}
	for i, seed := range hc.OTPSeeds {
		n, err := verifier.NormalizeSeed(seed)
		switch {
		case err != nil && i == 0:
			return verifier.Host{}, "", fmt.Errorf("%s.otp_seed: not a base32 seed", key)
		case err != nil:
			return verifier.Host{}, "", fmt.Errorf("%s.old_otp_seeds[%d]: not a base32 seed", key, i-1)
		case slices.Contains(h.OTPSeeds, n):
			return verifier.Host{}, "", fmt.Errorf("%s.old_otp_seeds[%d] repeats otp_seed or another old seed", key, i-1)
		}
		h.OTPSeeds = append(h.OTPSeeds, n)
	}
	if hc.JWT == nil {
		return h, "", nil
	}
	j, warning, err := jwt(key+".jwt", hc.JWT)
	h.JWT = j
	return h, warning, err
}

// jwt makes a host's JWT section the verifier's and has it checked (key
// is its name, hosts."h".jwt). It returns a warning if the set holds a
// symmetric key and every user may read its file. Its errors never quote
// a key of the set.
func jwt(key string, jc *config.JWT) (*verifier.JWT, string, error) {
	j := &verifier.JWT{
		KeySet:      jc.KeySet,
		Algorithms:  jc.Algorithms,
		JIDClaim:    jc.JIDClaim,
		UserClaim:   jc.UserClaim,
		Issuer:      jc.Issuer,
		Audience:    jc.Audience,
		MaxLifetime: jc.MaxLifetime,
		Leeway:      jc.Leeway,
	}
	if j.Algorithms == nil {
		j.Algorithms = verifier.DefaultJWTAlgorithms()
	}
	if jc.Fetched != nil {
		if err := j.ValidateFetched(); err != nil {
			return nil, "", fmt.Errorf("%s: %s", key, verifier.Detail(err))
		}
		return j, "", nil
	}
	if err := j.Validate(); err != nil {
		return nil, "", fmt.Errorf("%s: %s (keys_file %s)", key, verifier.Detail(err), jc.KeysFile)
	}
	if jc.ReadableByAll != "" && j.HasSymmetricKey() {
		return j, fmt.Sprintf("%s: %s (it holds a symmetric key, a secret)", jc.KeysFile, jc.ReadableByAll), nil
	}
	return j, "", nil
}

// fetchedKeys checks where a host's keys are fetched from by the
// fetchers' rules (HTTPS, or plain HTTP to a loopback address; an issuer
// without query or fragment) and makes it their Spec.
func fetchedKeys(key string, jc *config.JWT) (jwks.Spec, error) {
	f := jc.Fetched
	spec := jwks.Spec{URL: f.URL, Discovery: f.Discovery, CAFile: f.CAFile, MaxStale: f.MaxStale}
	if f.Discovery {
		spec.Issuer = jc.Issuer
		if err := jwks.CheckIssuer(jc.Issuer); err != nil {
			return jwks.Spec{}, fmt.Errorf("%s.issuer: with discovery, %w", key, err)
		}
	} else if err := jwks.CheckURL(f.URL); err != nil {
		return jwks.Spec{}, fmt.Errorf("%s.keys_url: %w", key, err)
	}
	return spec, nil
}

// Warnings lists what in the configuration weakens its security: the
// file's (config.Config.Warnings) and the key sets'.
func (s *Config) Warnings() []string {
	return append(s.Config.Warnings(), s.warnings...)
}

// NewVerifier builds the configuration's verifier on store.
func (s *Config) NewVerifier(store replay.Store) (*verifier.Verifier, error) {
	if store == nil {
		return nil, errors.New("setup: no replay store")
	}
	vc := s.Verifier
	vc.Store = store
	vc.Hosts = s.withKeySources()
	return verifier.New(vc)
}

// NewOffline builds the configuration's verifier without a replay store:
// for what mints tokens or looks at one and records nothing (mint, bench,
// explain, the HTTP API's tests). Its hosts whose keys are fetched refuse
// their JWTs unless given a key source.
func (s *Config) NewOffline() (*verifier.Offline, error) {
	vc := s.Verifier
	vc.Hosts = s.withKeySources()
	return verifier.NewOffline(vc)
}

// Check reports whether the verifier accepts the configuration: what
// NewVerifier would refuse on any store.
func (s *Config) Check() error {
	_, err := s.NewOffline()
	return err
}

// withKeySources returns the verifier's hosts, those whose keys are
// fetched and that have no key source yet (verifier.JWT.Keys) given one
// that never has keys: commands that fetch nothing refuse their JWTs
// (keys_unavailable). It changes none of s's settings.
func (s *Config) withKeySources() map[string]verifier.Host {
	hosts, cloned := s.Verifier.Hosts, false
	for _, name := range slices.Sorted(maps.Keys(s.FetchedKeys)) {
		h, ok := hosts[name]
		if !ok || h.JWT == nil || h.JWT.Keys != nil {
			continue
		}
		if !cloned {
			hosts, cloned = maps.Clone(hosts), true
		}
		j := *h.JWT
		j.Keys = notFetched{}
		h.JWT = &j
		hosts[name] = h
	}
	return hosts
}

// notFetched is the key source of a host whose keys no one fetches.
type notFetched struct{}

func (notFetched) KeySet(context.Context) (*verifier.KeySet, error) {
	return nil, errors.New("this command does not fetch keys from the provider")
}

func (notFetched) Refresh(_ context.Context, s *verifier.KeySet) *verifier.KeySet { return s }
