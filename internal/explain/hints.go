package explain

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tokenauthd/tokenauthd/verifier"
)

// Hints: what the other hosts and secrets of the configuration say of a
// token the checks refused, and how steps and seeds are named.

// otherHostsWithOTP lists the other hosts whose seeds give the token's OTP
// inside the window. These probes, and otherSigners', use Check: Explain
// would add its day-wide OTP search (thousands of HMACs) for every host.
func (x *explainer) otherHostsWithOTP(ctx context.Context, user, host, token string) []string {
	var found []string
	for _, other := range x.hostNames() {
		if other == host {
			continue
		}
		o := x.cfg.Verifier.Hosts[other]
		v, err := x.verifier(map[string]verifier.Host{host: {TokenSecrets: o.TokenSecrets, OTPSeeds: o.OTPSeeds}})
		if err != nil {
			continue
		}
		if r := v.Check(ctx, user, host, token); r.Reason != verifier.OTPOutOfWindow {
			found = append(found, other)
		}
	}
	return found
}

// otherSigners explains a bad signature by the other hosts: a token minted
// for user@other, or signed with other's secret.
func (x *explainer) otherSigners(ctx context.Context, user, host, token string) []string {
	var hints []string
	// The server passes the user name nodeprepped (lower case); an
	// application that signs the name as typed signs another string.
	for _, other := range []string{strings.ToUpper(user[:1]) + user[1:], strings.ToUpper(user)} {
		if other == user {
			continue
		}
		if r := x.v.Check(ctx, other, host, token); r.OK() {
			hints = append(hints, fmt.Sprintf("it is signed for the user name %q: the application must sign the name as the server passes it, %q (lower case)", other, user))
			break
		}
	}
	self := x.cfg.Verifier.Hosts[host]
	for _, other := range x.hostNames() {
		if other == host {
			continue
		}
		if r := x.v.Check(ctx, user, other, token); r.OK() {
			hints = append(hints, fmt.Sprintf("it is a token for %s@%s: the application minted it for host %q", user, other, other))
			continue
		}
		o := x.cfg.Verifier.Hosts[other]
		v, err := x.verifier(map[string]verifier.Host{host: {TokenSecrets: o.TokenSecrets, OTPSeeds: self.OTPSeeds}})
		if err != nil {
			continue
		}
		if r := v.Check(ctx, user, host, token); r.Reason == verifier.Accepted {
			which := "token_secret"
			if r.Secret > 0 {
				which = fmt.Sprintf("old_token_secrets[%d]", r.Secret-1)
			}
			hints = append(hints, fmt.Sprintf("it is signed with the %s of host %q: the application uses the wrong host's secret", which, other))
		}
	}
	return hints
}

func seedName(i int) string {
	if i > 0 {
		return fmt.Sprintf("old_otp_seeds[%d]", i-1)
	}
	return "otp_seed"
}

// skew describes a step offset in seconds.
func skew(off, step int) string {
	switch {
	case off == 0:
		return "the current step"
	case off < 0:
		return fmt.Sprintf("%d s in the past", -off*step)
	}
	return fmt.Sprintf("%d s in the future", off*step)
}

func (x *explainer) hostNames() []string {
	names := slices.Sorted(maps.Keys(x.cfg.Verifier.Hosts))
	return names
}
