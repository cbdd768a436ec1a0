package config

import "time"

// DefaultSocket is where serve listens and connect dials when neither a
// flag, the environment nor the configuration says otherwise.
const DefaultSocket = "/run/tokenauthd/tokenauthd.sock"

// Connection limits ([daemon] max_connections and request_timeout_ms).
// A stalled connection costs the daemon its buffers (about 8 KiB) and a
// goroutine; the unit allows 65,536 descriptors.
const (
	DefaultMaxConnections = 1024
	maxMaxConnections     = 1_000_000
	DefaultRequestTimeout = 5 * time.Second
)

// protocols are the values of the file's protocol key, protocol.Mode's
// names.
var protocols = []string{"auto", "ejabberd", "generic"}

// The file's defaults that are the libraries' too: mod_auth_token's token
// parameters and tokenauthd mint's nonce length (the verifier's), the
// memory store's capacity (replay's), the Redis store's key prefix and
// timeout (replay/redis's), a host's JWT settings and their bounds (the
// verifier's). They are written here, not imported, so that reading the
// file links none of those packages; defaults_test.go holds them equal.
const (
	defaultDigits         = 8
	defaultInterval       = 30 * time.Second
	defaultDrift          = 1
	defaultNonceDigits    = 32
	defaultCapacity       = 1_000_000
	maxCapacity           = 1 << 30 // the memory store's most
	defaultRedisPrefix    = "tokenauthd:"
	defaultRedisTimeout   = 500 * time.Millisecond
	defaultJIDClaim       = "jid"
	defaultJWTMaxLifetime = 300 * time.Second
	defaultJWTLeeway      = 30 * time.Second
	maxJWTLifetimeSeconds = 24 * 60 * 60
	maxJWTLeewaySeconds   = 5 * 60
)

// defaultKeysMaxStale is keys_max_stale's default, internal/jwks's
// DefaultMaxStale (which links the verifier), written again likewise.
const defaultKeysMaxStale = 24 * time.Hour

// DefaultRelayTimeout bounds one request through the relay, dialling and
// retrying included: under Prosody's 5 s external_auth_timeout and far under
// ejabberd's 30 s. It is protocol.DefaultClientTimeout.
const DefaultRelayTimeout = 2 * time.Second

// DefaultSeenFor is seen_for's default: how long a login keeps a user
// known on a host with isuser = "seen".
const DefaultSeenFor = 90 * 24 * time.Hour
