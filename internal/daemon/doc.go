// Package daemon is tokenauthd's serving side: `tokenauthd serve` (one
// verifier and one replay store for every relay, Prosody module and helper
// of a host, on a Unix socket), the stdin/stdout helper that runs the same
// handler in the XMPP server's own process, the handler that turns
// protocol requests into verdicts (auth.go), reloading on SIGHUP, the
// Prometheus metrics, the per-reason rate-limited refusal log, opening the
// configured replay store, the fetchers of JWT keys of the hosts whose
// keys come from an identity provider (keys.go, one pool per process,
// kept across reloads), check-config, which loads what serving would and
// fetches those keys once, and starting serve's HTTP API ([http], package
// httpapi) on the listener it opens.
//
// It must never know how tokens are checked (package verifier's), how bytes
// are framed (package protocol's) or how a store keeps its records
// (package replay's), and it never imports the bench or explain commands.
package daemon
