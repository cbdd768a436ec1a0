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
