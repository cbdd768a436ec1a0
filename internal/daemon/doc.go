// Package daemon is tokenauthd's serving side: `tokenauthd serve` (one
// verifier and one replay store for every relay, Prosody module and helper
// of a host, on a Unix socket) and the stdin/stdout helper that runs the
// same handler in the XMPP server's own process. Both are one Daemon
// (daemon.go), the one owner of a serving process's state: New(cfg,
// Options{…}) opens the configured replay store and, beside it, where the
// users seen logging in are kept (seen.go: isuser = "seen"), builds the
// verifier with
// the fetchers of JWT keys of the hosts whose keys come from an identity
// provider (keys.go, kept across reloads), the Prometheus metrics and the
// per-reason rate-limited refusal log, and for serve listens on its
// sockets, the metrics address and the HTTP API's ([http], package
// httpapi); Run serves, Reload (SIGHUP) puts a new configuration in
// effect, and the end of serving closes it all. The handler that turns
// protocol requests into verdicts is auth.go's. Beside them: check-config,
// which loads what serving would and fetches those keys once, and
// init-journal.
//
// It must never know how tokens are checked (package verifier's), how bytes
// are framed (package protocol's) or how a store keeps its records
// (package replay's), and it never imports the bench or explain commands.
package daemon
