package verifier

import (
	"context"
	"time"
)

// Offline is a verifier without a replay store, for what never records a
// token: checking a configuration, minting tokens (as an application
// does), and telling why a token would be refused. It checks everything
// of a token but whether it was used before, so it can never say that a
// token is fresh: its Accepted means "would be accepted by a store that
// has not seen it". It is safe for concurrent use.
//
// It is a type of its own, not a Verifier with no store, so that nothing
// that answers logins can be built from one.
type Offline struct{ v *Verifier }

// NewOffline checks c as New does, but for c.Store, which it ignores, and
// returns its offline verifier. A configuration NewOffline accepts, New
// accepts with any store.
func NewOffline(c Config) (*Offline, error) {
	c.Store = nil
	v, err := build(c)
	if err != nil {
		return nil, err
	}
	return &Offline{v: v}, nil
}

// Params returns the token parameters.
func (o *Offline) Params() Params { return o.v.Params() }

// Mint is Verifier.Mint.
func (o *Offline) Mint(user, hostname string, at time.Time, nonce string) (string, error) {
	return o.v.Mint(user, hostname, at, nonce)
}

// IsUser is Verifier.IsUser.
func (o *Offline) IsUser(user, hostname string) bool { return o.v.IsUser(user, hostname) }

// Check is Verifier.Check with no store to ask: Accepted when every check
// passes (name, window, signature, a JWT's claims and key), whether or
// not the token was used; never Replayed, StoreUnavailable or
// StoreForgot.
func (o *Offline) Check(ctx context.Context, user, hostname, password string) Result {
	r, _ := o.v.check(ctx, user, hostname, password)
	return r
}

// Explain is Check with Verifier.Explain's search for an OTP outside the
// window.
func (o *Offline) Explain(ctx context.Context, user, hostname, password string) Result {
	return o.v.searched(o.Check(ctx, user, hostname, password), hostname, password)
}
