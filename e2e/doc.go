// Package e2e holds the tests that run the built tokenauthd binary, or a
// real peer: ejabberd, Prosody, redis-server, slixmpp, pyotp, PyJWT and
// systemd's tools. With TOKENAUTHD_E2E=1 (scripts/test sets it) a missing
// peer fails the test instead of skipping it. TOKENAUTHD_PEERS picks whose ejabberd,
// Prosody and Redis run (internal/fixture/peers): Debian 12's (debian12, the
// default) or Debian 13's (debian13, from scripts/peers-debian13), and each
// test that starts one checks that it is that set's version.
//
// It is a test-only package: it must never be imported, and it reaches
// tokenauthd as an admin or an XMPP server would, through the binary, its
// files and its socket; the libraries serve it only to mint tokens and
// prepare files, as an application would.
package e2e
