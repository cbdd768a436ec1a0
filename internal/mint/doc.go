// Package mint is `tokenauthd mint` and `tokenauthd gen-secrets`: tokens
// for a user from the configured secrets, as an application would make
// them, and fresh secrets for a new host.
//
// It must never know how tokens reach the daemon or how they are kept.
package mint
