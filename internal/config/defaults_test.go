package config

import (
	"slices"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/jwks"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	redisstore "github.com/tokenauthd/tokenauthd/replay/redis"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// The file's defaults and bounds are the libraries' own, written again
// in defaults.go so that reading the file links none of them: each pair
// must agree.
func TestDefaultsAreTheLibraries(t *testing.T) {
	p := verifier.DefaultParams()
	for _, tc := range []struct {
		name      string
		file, lib any
	}{
		{"digits", defaultDigits, p.Digits},
		{"interval", defaultInterval, p.Interval},
		{"drift", defaultDrift, p.Drift},
		{"nonce_digits", defaultNonceDigits, verifier.NonceDigits},
		{"capacity", defaultCapacity, replay.DefaultCapacity},
		{"most capacity", maxCapacity, replay.MaxCapacity},
		{"redis_prefix", defaultRedisPrefix, redisstore.DefaultPrefix},
		{"redis_timeout_ms", defaultRedisTimeout, redisstore.DefaultTimeout},
		{"jid_claim", defaultJIDClaim, verifier.DefaultJIDClaim},
		{"max_lifetime", defaultJWTMaxLifetime, verifier.DefaultJWTMaxLifetime},
		{"leeway", defaultJWTLeeway, verifier.DefaultJWTLeeway},
		{"max_lifetime's bound", time.Duration(maxJWTLifetimeSeconds) * time.Second, verifier.MaxJWTLifetime},
		{"leeway's bound", time.Duration(maxJWTLeewaySeconds) * time.Second, verifier.MaxJWTLeeway},
		{"connect.timeout_ms", DefaultRelayTimeout, protocol.DefaultClientTimeout},
		{"keys_max_stale", defaultKeysMaxStale, jwks.DefaultMaxStale},
	} {
		if tc.file != tc.lib {
			t.Errorf("%s: the file's default %v, the library's %v", tc.name, tc.file, tc.lib)
		}
	}
	var names []string
	for _, m := range []protocol.Mode{protocol.Auto, protocol.Ejabberd, protocol.Generic} {
		names = append(names, m.String())
	}
	if !slices.Equal(protocols, names) {
		t.Errorf("protocol names %q, protocol.Mode's %q", protocols, names)
	}
	for _, n := range protocols {
		if _, err := protocol.ParseMode(n); err != nil {
			t.Errorf("protocol = %q: %v", n, err)
		}
	}
}
