// Package jwks fetches the JWT key sets of hosts from their identity
// providers: a JWK Set at a URL (keys_url), or at the jwks_uri of an
// OpenID Connect provider's discovery document (discovery with issuer). A
// Fetcher is a verifier.KeySource: it keeps the last good set, refreshes
// it in the background by the response's Cache-Control (clamped to
// [MinRefresh, MaxRefresh]), fetches again at most once per MinRefetch for
// a JWT whose kid the set lacks, and stops vouching for a set older than
// keys_max_stale. A Pool keeps the fetchers of a serving process across
// reloads, so that a host whose URL did not change keeps its set.
//
// Every fetch is bounded: HTTPS (plain HTTP to a loopback address only),
// MaxBody bytes, FetchTimeout, MaxRedirects redirects, each to HTTPS.
//
// It must never know how JWTs are checked (package verifier's, which
// parses the sets it fetches) nor the configuration file's syntax; it
// never sees a token.
package jwks
