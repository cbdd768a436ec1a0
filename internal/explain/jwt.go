package explain

import (
	"context"

	"github.com/tokenauthd/tokenauthd/verifier"
)

// jwtHints say what an application does to get each JWT refusal.
var jwtHints = map[verifier.Reason]string{
	verifier.Malformed:           "a JWT is three base64url segments (header.claims.signature) whose header and claims are JSON; or the host accepts no JWT (no [hosts.\"HOST\".jwt] section)",
	verifier.BadSignature:        "the signature does not verify with the key its kid names: the application signs with another key, or the key set is not the application's",
	verifier.UnknownKey:          "the JWT's kid names no key of keys_file (or, with several keys, it has no kid): publish the application's new key in the set and reload before the application uses it (keys fetched from a provider: the set fetched again, at most once a minute, lacks it too)",
	verifier.AlgorithmNotAllowed: "its alg is not in algorithms, or does not fit the key (an HS256 JWT checked with a public key is refused on purpose)",
	verifier.Expired:             "its exp has passed: mint a JWT just before the login, not ahead of it",
	verifier.NotYetValid:         "its nbf or iat is in the future: the application's clock is ahead of this host's",
	verifier.LifetimeTooLong:     "it has no exp, or exp is more than max_lifetime after iat (or now): mint short-lived JWTs",
	verifier.MissingJTI:          "it has no jti: without one a JWT cannot be used only once; give each a fresh random jti",
	verifier.WrongJID:            "its JID claim is not the user@host the server passes (lower case, exactly): the application minted it for another account (with user_claim: the claim, case-folded, is not the user's local part)",
	verifier.WrongIssuer:         "its iss is not the configured issuer",
	verifier.WrongAudience:       "its aud does not contain the configured audience",
	verifier.KeysUnavailable: "the host's keys are fetched from its identity provider (keys_url, or discovery), and no key set may be used: " +
		"none was fetched since the start, or the last was fetched more than keys_max_stale ago. Every JWT of the host is refused so " +
		"until a fetch succeeds: check that the provider is up and reachable, and its certificate trusted (keys_ca_file); " +
		"tokenauthd check-config fetches once and says why not",
}

// jwt explains a JWT's verdict: a refusal and what to do about it, or,
// when every check passed, what the daemon knows of its use.
func (x *explainer) jwt(ctx context.Context, out lines, q query, r verifier.Result) ([]string, bool) {
	if r.Reason != verifier.Accepted {
		out.say("%s: refused: %s", q.jid(), r.Reason)
		if r.Err != nil {
			out.say("  %s", verifier.Detail(r.Err))
		}
		if h, ok := jwtHints[r.Reason]; ok {
			out.say("  %s", h)
		}
		return out, false
	}
	if r.KeyID != "" {
		out.say("  JWT: signed with key %q of the set; every claim is fine", r.KeyID)
	} else {
		out.say("  JWT: signed with the set's only key; every claim is fine")
	}
	return x.replayStatus(ctx, q, 0, out)
}
