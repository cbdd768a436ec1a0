package explain

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/tokenauthd/tokenauthd/verifier"
)

// The verdicts of the checks, one method each: what went wrong, and what
// the admin can do about it.

// malformed: the password is not a token's shape.
func (x *explainer) malformed(out *lines, q query, r verifier.Result) {
	out.say("%s: refused: malformed", q.jid())
	var pe *verifier.ParseError
	if errors.As(r.Err, &pe) {
		out.say("  at byte %d of the token: %s", pe.Offset, pe.Msg)
		out.say("  a token is %d digits of one-time password, the nonce digits, one space, then the base64 of a %d-byte signature",
			x.cfg.Verifier.Params.Digits, verifier.SignatureSize)
		return
	}
	out.say("  %s", verifier.Detail(r.Err))
}

// unknownHost: no secrets for the host.
func (x *explainer) unknownHost(out *lines, q query) {
	out.say("%s: refused: unknown_host", q.jid())
	out.say("  host %q is not configured; configured: %s", q.host, strings.Join(x.hostNames(), ", "))
}

// outOfWindow: the OTP is another step's, or no step's of the host.
func (x *explainer) outOfWindow(ctx context.Context, out *lines, q query, r verifier.Result) {
	out.say("%s: refused: otp_out_of_window", q.jid())
	if r.Far {
		out.say("  the one-time password is not %s's for any time within a day of now:", q.host)
		out.say("  the application uses another otp_seed (or other digits or interval)")
		for _, other := range x.otherHostsWithOTP(ctx, q.user, q.host, q.token) {
			out.say("  it is the one-time password of host %q's otp_seed: the application mixes up hosts", other)
		}
		return
	}
	p := x.cfg.Verifier.Params
	step := int(p.Interval / time.Second)
	out.say("  the one-time password is %s's for step %+d (%s); accepted: steps -%d to +%d",
		seedName(r.Seed), r.Offset, skew(r.Offset, step), p.Drift, p.Drift)
	if r.Offset < 0 {
		out.say("  the token was minted %d s before now: it was used late, or the application's clock is behind this host's", -r.Offset*step)
	} else {
		out.say("  the token was minted %d s after now: the application's clock is ahead of this host's", r.Offset*step)
	}
}

// badSignature: the OTP is right, the signature is not the host's.
func (x *explainer) badSignature(ctx context.Context, out *lines, q query, r verifier.Result) {
	out.say("%s: refused: bad_signature", q.jid())
	out.say("  one-time password: fine (%s, step %+d)", seedName(r.Seed), r.Offset)
	h := x.cfg.Verifier.Hosts[q.host]
	out.say("  the signature matches neither token_secret nor any of the %d old_token_secrets of %q",
		len(h.TokenSecrets)-1, q.host)
	hints := x.otherSigners(ctx, q.user, q.host, q.token)
	for _, hint := range hints {
		out.say("  %s", hint)
	}
	if len(hints) == 0 {
		out.say("  it matches no other configured host or secret either: the application signs with another secret, or for another user name (the signature covers the exact user@host, as the server passes it: lower case)")
	}
}

// passed: signature and window are right; which secret and seed matched.
// The verdict line comes from the replay store's answer (replay.go).
func (x *explainer) passed(out *lines, r verifier.Result) {
	p := x.cfg.Verifier.Params
	step := int(p.Interval / time.Second)
	out.say("  one-time password: %s, step %+d (%s); accepted: steps -%d to +%d", seedName(r.Seed), r.Offset, skew(r.Offset, step), p.Drift, p.Drift)
	if r.Secret > 0 {
		out.say("  signature: old_token_secrets[%d]: the application still signs with an old secret", r.Secret-1)
	} else {
		out.say("  signature: token_secret (the current one)")
	}
	if r.Seed > 0 {
		out.say("  the application still uses an old otp_seed")
	}
}
