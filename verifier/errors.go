package verifier

import (
	"fmt"
	"time"
)

// Error is every error of the verifier's but a malformed token's
// (*ParseError): parameters, host names, secrets and seeds it cannot use
// (New, Params.Validate, ValidateHostName, NormalizeSeed), a user name
// that cannot be a JID's local part, what Mint refuses. It never holds a
// secret, a seed or a token.
type Error struct {
	// Msg is what is wrong, without the "verifier: " of Error(): for
	// callers that print their own context ("hosts.\"x\": " + Msg).
	Msg string
	// Err is the cause, if another package's error is one (crypto/rand's
	// for a nonce); Msg already says it.
	Err error
}

func (e *Error) Error() string { return "verifier: " + e.Msg }

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// verr returns an *Error with a formatted message.
func verr(format string, a ...any) error {
	return &Error{Msg: fmt.Sprintf(format, a...)}
}

// ParseError describes a password that is not a well-formed token. It never
// holds the password or any part of it.
type ParseError struct {
	Offset int    // byte offset in the password where the problem is
	Msg    string // what is wrong there
}

func (e *ParseError) Error() string { return "verifier: " + e.detail() }

// detail is the error's text without the package's prefix.
func (e *ParseError) detail() string {
	return fmt.Sprintf("malformed token at byte %d: %s", e.Offset, e.Msg)
}

func parseErr(off int, msg string) error { return &ParseError{Offset: off, Msg: msg} }

// Detail returns the text of an error of the verifier's own, an *Error or
// a *ParseError, without its "verifier: " prefix: for a caller that puts
// it in a context of its own. Any other error's text is returned whole,
// an error that wraps one of the verifier's included: its text says more.
func Detail(err error) string {
	switch e := err.(type) {
	case *Error:
		return e.Msg
	case *ParseError:
		return e.detail()
	}
	return err.Error()
}

// ForgotError is Result.Err for StoreForgot: the replay store may have
// lost records at At, so tokens minted before Until are refused (see
// Params.RefusalEnds).
type ForgotError struct {
	At, Until time.Time
}

func (e *ForgotError) Error() string {
	return fmt.Sprintf("the replay store may have lost records at %s: tokens minted before %s are refused",
		e.At.Format(time.RFC3339), e.Until.Format(time.RFC3339))
}
