// Package explain is `tokenauthd explain`: it tells an admin why a token
// would be accepted or refused — its form, its OTP's step against the
// clock, which secret signed it and for which user and host, and, asking
// the daemon's "seen" and "unused" requests, whether it was used — without
// ever recording it.
//
// It must never record a token or print a secret, and the daemon never
// imports it.
package explain
