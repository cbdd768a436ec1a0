// Package httpapi is serve's HTTP API, the [http] section: it mints
// mod_auth_token tokens for applications that hold only a bearer key
// (POST /v1/tokens) and hands a browser client behind the site's login
// proxy fresh credentials (GET /v1/credentials, Converse.js's
// credentials_url), so that secrets never leave the daemon.
//
// It mints through the verifier in effect (verifier.Verifier.Mint), so a
// token it hands out is one the daemon accepts once; it bounds what a
// client can make it hold (bodies, headers, connections, time, the JIDs it
// counts per minute), compares keys in constant time, answers JSON with
// Cache-Control: no-store, and logs each mint (who asked, the JID) but
// never a token or a key.
//
// It must never know how tokens are checked or recorded (package
// verifier's, replay's), nor the XMPP wire (package protocol's); the
// daemon hands it its listener and the verifier in effect, and calls
// Reload with each new configuration.
package httpapi
