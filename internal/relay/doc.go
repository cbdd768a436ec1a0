// Package relay is `tokenauthd connect`: the stdin/stdout helper that
// ejabberd (extauth_program) or Prosody (mod_auth_external) starts, which
// hands each request to the daemon over its Unix socket with protocol's
// client and copies the reply back, answering no when the daemon does not
// answer within the bound.
//
// It must never know tokens, secrets or replay stores: it only carries
// requests and replies.
package relay
