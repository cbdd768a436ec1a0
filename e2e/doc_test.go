// Package e2e holds the tests that run the built tokenauthd binary, or a
// real peer: ejabberd, Prosody, redis-server, slixmpp, pyotp and systemd's
// tools. With TOKENAUTHD_E2E=1 (scripts/test sets it) a missing peer fails
// the test instead of skipping it.
//
// It is a test-only package: it must never be imported, and it reaches
// tokenauthd as an admin or an XMPP server would, through the binary, its
// files and its socket; the libraries serve it only to mint tokens and
// prepare files, as an application would.
package e2e
