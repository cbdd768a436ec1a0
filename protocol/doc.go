// Package protocol speaks the external-authentication protocols of ejabberd
// (extauth: 2-byte length-framed requests) and of Prosody's
// mod_auth_external (one request per line), on both sides.
//
// The server side (server.go) reads requests (reader.go), hands them to a
// Handler (or, several that arrived together, to a BatchHandler) and
// writes the Handler's yes or no back. The client side (client.go) frames
// requests (AppendRequest), reads replies (ReadReply) and asks one request
// at a time, or a batch in one write, over any stream (Conn). Requests and
// their fields are in request.go.
//
// It must never know what makes an answer yes: tokens, secrets and
// replay records are the verifier's and the replay store's. A password is
// an opaque last field: never parsed, and never put in an error.
package protocol
