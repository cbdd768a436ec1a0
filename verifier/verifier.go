// Package verifier checks mod_auth_token login tokens, and single-use JSON
// Web Tokens (jwt.go), whose keys come from a JWK Set or, when an
// identity provider's keys are fetched, from a KeySource it only asks
// (keyset.go).
//
// A token for user@host is
//
//	otp ‖ nonce ‖ " " ‖ base64(HMAC-SHA256(token_secret, otp ‖ nonce ‖ user "@" host))
//
// where otp is the host's TOTP code (RFC 6238, HMAC-SHA1) and nonce is any
// run of decimal digits. A token is accepted when its OTP is inside the time
// window, its signature matches, and it was never accepted before.
//
// It must never know how requests reach it (the protocols' wire formats
// are package protocol's) nor how accepted tokens are kept (package
// replay's: it asks a replay.Store). What records nothing, minting tokens
// or telling why one would be refused, takes an Offline verifier, which
// asks no store (offline.go). Its errors are *Error, and *ParseError for
// a malformed token; they never hold a secret, a seed or a token.
package verifier

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenauthd/tokenauthd/replay"
)

// Reason is why a token was accepted or refused.
type Reason string

// The reasons Verify gives (and those of jwt.go; Reasons lists them all).
const (
	Accepted         Reason = "accepted"
	Malformed        Reason = "malformed"         // not a token, or a user name that cannot be one
	UnknownHost      Reason = "unknown_host"      // no secrets configured for the host
	OTPOutOfWindow   Reason = "otp_out_of_window" // OTP of no step in the window
	BadSignature     Reason = "bad_signature"     // signature of another user, host or secret
	Replayed         Reason = "replayed"          // accepted before
	StoreUnavailable Reason = "store_unavailable" // the replay store could not answer
	// StoreForgot: the replay store may have lost records (a restarted
	// Redis, a lost journal, a full memory store) at a moment when this
	// token could already have been accepted: a replay cannot be ruled out.
	StoreForgot Reason = "store_forgot"
)

// Reasons returns every reason Verify, Check and Explain can give, tokens'
// and JWTs', Accepted first: for metrics that create their series ahead.
func Reasons() []Reason {
	return []Reason{Accepted, Malformed, UnknownHost, OTPOutOfWindow, BadSignature, Replayed,
		StoreUnavailable, StoreForgot, Expired, NotYetValid, LifetimeTooLong, MissingJTI,
		WrongJID, UnknownKey, AlgorithmNotAllowed, WrongIssuer, WrongAudience, KeysUnavailable}
}

// Params are the token parameters shared by every host. The defaults are
// mod_auth_token's.
type Params struct {
	Digits   int           // OTP digits (8)
	Interval time.Duration // TOTP time step (30 s)
	Drift    int           // steps accepted on either side of the current one (1)
	// NonceDigits, if not 0, is the exact number of nonce digits a token
	// must have. Any number is accepted when 0, as mod_auth_token does.
	NonceDigits int
	// MinReplayTTL, if longer than the tokens' own need, is how long the
	// replay store must keep its records (see ReplayTTL): what the hosts'
	// JWTs need, the largest JWT.ReplayTTL. New refuses a JWT host that
	// needs more.
	MinReplayTTL time.Duration
}

// DefaultParams returns mod_auth_token's parameters.
func DefaultParams() Params {
	return Params{Digits: 8, Interval: 30 * time.Second, Drift: 1}
}

// Validate reports whether the parameters can be used.
func (p Params) Validate() error {
	switch {
	case p.Digits < 6 || p.Digits > maxDigits:
		return verr("digits must be 6 to %d, not %d", maxDigits, p.Digits)
	case p.Interval < time.Second || p.Interval%time.Second != 0:
		return verr("interval must be a whole number of seconds, at least 1, not %v", p.Interval)
	case p.Drift < 0 || p.Drift > maxDrift:
		return verr("drift must be 0 to %d, not %d", maxDrift, p.Drift)
	case p.NonceDigits < 0 || p.NonceDigits > 256:
		return verr("nonce digits must be 0 to 256, not %d", p.NonceDigits)
	case p.MinReplayTTL < 0 || p.MinReplayTTL > MaxJWTLifetime+2*MaxJWTLeeway:
		return verr("the least replay TTL must be 0 to %v, not %v", MaxJWTLifetime+2*MaxJWTLeeway, p.MinReplayTTL)
	}
	return nil
}

// ReplayTTL is how long the replay store must keep its records: for a
// token, the whole time its OTP can still be accepted, (2·drift+1) steps,
// plus one step of margin for clock adjustments; MinReplayTTL if longer
// (for JWTs).
func (p Params) ReplayTTL() time.Duration {
	return max(time.Duration(2*p.Drift+2)*p.Interval, p.MinReplayTTL)
}

// RefusalEnds returns when the refusals that follow a replay store's loss
// of records at forgot end: a token minted from then on (on a clock in step
// with the verifier's) is accepted, one minted before is refused all its
// life. A process that lost its records at forgot could have accepted
// tokens of every step up to forgot's plus drift (a client clock ahead), so
// the refusals last drift+1 steps after forgot's step began: 30 to 60 s
// with the defaults.
func (p Params) RefusalEnds(forgot time.Time) time.Time {
	iv := int64(p.Interval / time.Second)
	return time.Unix((forgot.Unix()/iv+int64(p.Drift)+1)*iv, 0)
}

// Host holds the secrets of one virtual host: its token secrets and OTP
// seeds, its JWT settings, or both.
type Host struct {
	// TokenSecrets are the HMAC keys; the first is the current one, the
	// others are still accepted (rotation) but never used to mint.
	TokenSecrets [][]byte
	// OTPSeeds are base32 TOTP seeds, the first the current one.
	OTPSeeds []string
	// IsUser is the answer to "does this user exist" for the host, unless
	// SeenFor is set.
	IsUser bool
	// SeenFor, if above 0, makes the host's users exist who logged in
	// within it (isuser = "seen"): the verifier only keeps it (SeenFor);
	// its caller records logins and answers from them. IsUser is then
	// false.
	SeenFor time.Duration
	// JWT, if set, are the host's JWT settings: it accepts JWTs.
	JWT *JWT
}

// Config is what New needs.
type Config struct {
	Params Params
	Hosts  map[string]Host
	Store  replay.Store     // where accepted tokens are recorded; required
	Now    func() time.Time // the clock; time.Now if nil
}

// Result is the verdict on one token.
type Result struct {
	Reason Reason
	// Offset is the matched OTP's time step relative to the current one
	// (negative: minted earlier). Explain also sets it for OTPOutOfWindow
	// when it finds the OTP within a day of now; Far says it did not.
	Offset int
	Far    bool
	// Seed and Secret are the indexes of the matched seed and secret
	// (0: the current one).
	Seed, Secret int
	// Err is why: for Malformed a *ParseError (or an *Error for a user
	// name), for StoreUnavailable the store's error, for StoreForgot a
	// *ForgotError (what the store forgot and until when).
	Err error
	// Forgot is, for StoreForgot, the moment the store may have lost
	// records; Params.RefusalEnds tells when such refusals end.
	Forgot time.Time
	// JWT says the password was taken for a JWT (its reasons are then
	// jwt.go's or shared ones; Offset, Seed and Secret mean nothing, and
	// Seed and Secret are -1). For a refusal after the JWT's key was
	// found, KeyID is that key's kid.
	JWT   bool
	KeyID string
}

// OK reports whether the token was accepted.
func (r Result) OK() bool { return r.Reason == Accepted }

// Verifier checks tokens. It is safe for concurrent use and immutable but
// for its caches: to change hosts or secrets, build a new one on the same
// Store.
type Verifier struct {
	p           Params
	hosts       map[string]host
	store       replay.Store
	now         func() time.Time
	refusalEnds func(forgot time.Time) time.Time
	scratch     sync.Pool // of *scratch, for any host's tokens
}

// host is one host's state, held by value in the verifier's map, its seeds
// and secrets in two arrays: a token reads few cache lines of it, however
// many hosts there are.
type host struct {
	seeds   []seed
	secrets []secret
	isUser  bool
	seenFor time.Duration
	jwt     *jwtHost // nil: the host accepts no JWT
}

type seed struct {
	win    atomic.Pointer[window]
	digits int
	key    string // normalised base32

	mu      sync.Mutex // over mac, counter and sum, for appendCode
	mac     hash.Hash  // HMAC-SHA1 keyed by the decoded seed; Reset restores the key
	counter [8]byte
	sum     [sha1.Size]byte
}

// newSeed returns the seed of the normalised base32 key, making codes of
// digits digits.
func newSeed(key string, digits int) (*seed, error) {
	s := new(seed)
	return s, s.init(key, digits)
}

// init makes s the seed of the normalised base32 key, making codes of
// digits digits.
func (s *seed) init(key string, digits int) error {
	// Padded as hotp.GenerateCodeCustom pads it, which TestSeedCode holds
	// code to.
	padded := key
	if n := len(key) % 8; n != 0 {
		padded += strings.Repeat("=", 8-n)
	}
	raw, err := base32.StdEncoding.DecodeString(padded)
	if err != nil {
		return err
	}
	s.key, s.digits, s.mac = key, digits, hmac.New(sha1.New, raw)
	return nil
}

// The largest drift and digits Params.Validate allows.
const (
	maxDrift  = 10
	maxDigits = 10
)

// window caches the codes of the steps around one time step, in one
// object: one allocation a window, and its first cache line holds all
// three codes of the default drift.
type window struct {
	step  int64
	n     int                                // how many codes: 2·drift+1
	lens  [2*maxDrift + 1]uint8              // lens[i] is the length of code i: the digits, 0 for a step before 1970
	codes [(2*maxDrift + 1) * maxDigits]byte // code i, of step-drift+i, starts at i·digits
}

// secret is one token secret and its HMAC-SHA256 keyed once, when the
// verifier is made: the hash's states after the key's inner and outer
// pads (RFC 2104), which crypto/hmac itself keeps (FIPS 198-1, section 6,
// allows it). A state after one block is its 32-byte chaining value, the
// rest of its marshalled form the same for every key: a secret keeps the
// two values, one cache line, and a token restores them, through the
// marshalled form, into two SHA-256 states of the verifier's scratch,
// shared by every host. Nothing of a host is lost to a garbage collection
// (TestVerifyAllocsFlatInHosts); TestSecretSumIsHMAC holds the sums to
// crypto/hmac's.
type secret struct {
	state [2][sha256.Size]byte // the chaining values after the inner and outer pads
	// pads are the whole marshalled states, kept instead when their form
	// is not the one expected (another SHA-256 implementation).
	pads [2][]byte
	key  []byte
}

// chainAt is where a marshalled SHA-256 state holds its chaining value
// (after a 4-byte magic), when oneBlockState says the form is the one
// expected.
const chainAt = 4

// oneBlockState returns the marshalled state of SHA-256 after block, one
// block.
func oneBlockState(block []byte) ([]byte, error) {
	h := sha256.New()
	h.Write(block)
	return h.(encoding.BinaryMarshaler).MarshalBinary()
}

// newSecret returns the secret of key, its pads' states hashed.
func newSecret(key []byte) (secret, error) {
	s := secret{key: append([]byte(nil), key...)}
	k := s.key
	if len(k) > sha256.BlockSize {
		d := sha256.Sum256(k)
		k = d[:]
	}
	var pads [2][sha256.BlockSize]byte
	defer clear(pads[:])
	for i, x := range [2]byte{0x36, 0x5c} {
		copy(pads[i][:], k)
		for j := range pads[i] {
			pads[i][j] ^= x
		}
	}
	var zero [sha256.BlockSize]byte
	blank, err := oneBlockState(zero[:])
	if err != nil {
		return secret{}, err
	}
	for i := range pads {
		st, err := oneBlockState(pads[i][:])
		if err != nil {
			return secret{}, err
		}
		end := chainAt + sha256.Size
		if len(st) != len(blank) || string(st[:chainAt]) != string(blank[:chainAt]) || string(st[end:]) != string(blank[end:]) {
			s.pads[i] = st
			continue
		}
		copy(s.state[i][:], st[chainAt:end])
		clear(st)
	}
	return s, nil
}

// scratch is what one token needs to check its signature: two SHA-256
// states and their marshalled forms, the signed message, the digests. A
// verifier keeps a pool of them, taken by every host's tokens.
type scratch struct {
	hash       [2]hash.Hash                  // inner, outer
	restorer   [2]encoding.BinaryUnmarshaler // the same, asserted once
	marshalled [2][]byte                     // a state after one block, its chaining value replaced by a secret's
	buf        []byte
	sum        [sha256.Size]byte
}

func newScratch() any {
	m := &scratch{buf: make([]byte, 0, 128)}
	var zero [sha256.BlockSize]byte
	for i := range m.hash {
		m.hash[i] = sha256.New()
		m.restorer[i], _ = m.hash[i].(encoding.BinaryUnmarshaler) // nil: sum fails, the token is refused
		m.marshalled[i], _ = oneBlockState(zero[:])               // checked by newSecret for every secret
	}
	return m
}

// restore sets m's hash i to the secret's state after pad i (0 inner, 1
// outer).
func (s *secret) restore(m *scratch, i int) error {
	st := s.pads[i]
	if st == nil {
		st = m.marshalled[i]
		copy(st[chainAt:], s.state[i][:])
	}
	if m.restorer[i] == nil {
		return verr("sha-256 state cannot be restored")
	}
	return m.restorer[i].UnmarshalBinary(st)
}

// sum returns the secret's HMAC-SHA256 of msg, in m.sum.
func (s *secret) sum(m *scratch, msg []byte) ([]byte, error) {
	if err := s.restore(m, 0); err != nil {
		return nil, err
	}
	m.hash[0].Write(msg)
	d := m.hash[0].Sum(m.sum[:0])
	if err := s.restore(m, 1); err != nil {
		return nil, err
	}
	m.hash[1].Write(d)
	return m.hash[1].Sum(m.sum[:0]), nil
}

// NormalizeSeed returns seed upper-cased, without spaces or '=' padding, or
// an error if it is not base32.
func NormalizeSeed(s string) (string, error) {
	s = strings.ToUpper(strings.NewReplacer(" ", "", "=", "").Replace(strings.TrimSpace(s)))
	if s == "" {
		return "", verr("empty otp seed")
	}
	if _, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s); err != nil {
		return "", verr("otp seed is not base32")
	}
	return s, nil
}

// New returns a Verifier for the given hosts, recording in c.Store.
func New(c Config) (*Verifier, error) {
	if err := c.Params.Validate(); err != nil {
		return nil, err
	}
	if c.Store == nil {
		return nil, verr("no replay store")
	}
	return build(c)
}

// build is New but for the store, which it neither needs nor checks:
// NewOffline's verifier has none and never asks one.
func build(c Config) (*Verifier, error) {
	if err := c.Params.Validate(); err != nil {
		return nil, err
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	v := &Verifier{p: c.Params, hosts: make(map[string]host, len(c.Hosts)), store: c.Store, now: c.Now,
		refusalEnds: c.refusalEnds()}
	v.scratch.New = newScratch
	for name, hc := range c.Hosts {
		if err := ValidateHostName(name); err != nil {
			return nil, err
		}
		if (len(hc.TokenSecrets) == 0 || len(hc.OTPSeeds) == 0) &&
			(hc.JWT == nil || len(hc.TokenSecrets)+len(hc.OTPSeeds) != 0) {
			return nil, verr("host %q needs a token secret and an otp seed, or JWT settings", name)
		}
		h := host{isUser: hc.IsUser && hc.SeenFor <= 0, seenFor: max(hc.SeenFor, 0), seeds: make([]seed, len(hc.OTPSeeds))}
		if hc.JWT != nil {
			j, err := newJWTHost(hc.JWT, c.Now, false)
			if err != nil {
				return nil, verr("%s (host %q)", Detail(err), name)
			}
			if need, have := hc.JWT.ReplayTTL(), c.Params.ReplayTTL(); need > have {
				return nil, verr("host %q: its JWTs must be remembered %v (max lifetime, plus the leeway, plus the largest leeway allowed), "+
					"but the replay TTL is %v: raise Params.MinReplayTTL", name, need, have)
			}
			h.jwt = j
		}
		for i, s := range hc.OTPSeeds {
			k, err := NormalizeSeed(s)
			if err != nil {
				return nil, verr("%s (host %q)", Detail(err), name)
			}
			if err := h.seeds[i].init(k, c.Params.Digits); err != nil {
				return nil, verr("host %q: its otp_seed is not base32", name)
			}
		}
		for _, k := range hc.TokenSecrets {
			if len(k) == 0 {
				return nil, verr("host %q has an empty token secret", name)
			}
			sc, err := newSecret(k)
			if err != nil {
				return nil, verr("host %q: its token secret cannot be keyed", name)
			}
			h.secrets = append(h.secrets, sc)
		}
		v.hosts[name] = h
	}
	return v, nil
}

// ValidateHostName reports whether name can be a host's name.
func ValidateHostName(name string) error {
	if name == "" {
		return verr("empty host name")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c == 0x7f || c == '@' || c == '/' || c == ':' {
			return verr("host name %q has a forbidden character", name)
		}
	}
	return nil
}

// errBadUser returns the error for a user name validUser refuses: a new
// one each time, as callers may change what they are handed.
func errBadUser() error { return verr("user name cannot be a JID's local part") }

// validUser reports whether user can be the local part of a JID that a
// server hands over: not empty, no '@', '/', spaces or control characters.
func validUser(user string) bool {
	if user == "" {
		return false
	}
	for i := 0; i < len(user); i++ {
		if c := user[i]; c <= ' ' || c == 0x7f || c == '@' || c == '/' || c == ':' {
			return false
		}
	}
	return true
}

// Params returns the verifier's token parameters.
func (v *Verifier) Params() Params { return v.p }

// RefusalEnds returns when the StoreForgot refusals that follow a loss of
// records at forgot end, for tokens (Params.RefusalEnds) and for JWTs that
// carry an iat: the later of the two. (A JWT without iat is judged by exp
// minus the host's max lifetime, so one that lives less is refused for
// longer.)
func (v *Verifier) RefusalEnds(forgot time.Time) time.Time { return v.refusalEnds(forgot) }

// RefusalEnds is Verifier.RefusalEnds for the verifier c makes, known
// before it is made (when a store is opened).
func (c Config) RefusalEnds(forgot time.Time) time.Time { return c.refusalEnds()(forgot) }

// refusalEnds returns RefusalEnds for c's parameters and hosts.
func (c Config) refusalEnds() func(time.Time) time.Time {
	var leeway time.Duration
	jwts := false
	for _, h := range c.Hosts {
		if h.JWT != nil {
			leeway, jwts = max(leeway, h.JWT.Leeway), true
		}
	}
	p := c.Params
	return func(forgot time.Time) time.Time {
		end := p.RefusalEnds(forgot)
		if e := jwtRefusalEnds(forgot, leeway); jwts && e.After(end) {
			end = e
		}
		return end
	}
}

// IsUser answers the "does this user exist" question for user@host.
func (v *Verifier) IsUser(user, hostname string) bool {
	h, ok := v.hosts[hostname]
	return ok && h.isUser && validUser(user)
}

// SeenFor returns the host's SeenFor: above 0 if its users exist who logged
// in within it (the caller's to know), 0 if its answer is IsUser's or it
// is no host of this verifier.
func (v *Verifier) SeenFor(hostname string) time.Duration {
	if h, ok := v.hosts[hostname]; ok {
		return h.seenFor
	}
	return 0
}

// Verify checks password as a token for user@host and, if it is valid and
// new, records it so that it is never accepted again.
//
// A token that the replay store cannot vouch for, because it may have lost
// records since the token could be accepted, is refused with StoreForgot:
// checked before recording, and again after, for a loss found while
// recording (a reconnection to a restarted Redis).
//
// A JWT is checked the same way, and its (iss, jti) pair recorded.
func (v *Verifier) Verify(ctx context.Context, user, hostname, password string) Result {
	return v.decide(ctx, user, hostname, password, true)
}

// decide checks password and asks the store about it: to record it
// (Verify), or only whether it holds it (Check). A store that cannot vouch
// for it, before or after, refuses it.
func (v *Verifier) decide(ctx context.Context, user, hostname, password string, record bool) Result {
	r, p := v.check(ctx, user, hostname, password)
	if r.Reason != Accepted || v.forgotAny(&r, &p) {
		return r
	}
	var held bool
	var err error
	if record {
		var fresh bool
		fresh, err = v.store.Record(ctx, p.key)
		held = !fresh
	} else {
		held, err = v.store.Seen(ctx, p.key)
	}
	switch {
	case err == nil && held:
		r.Reason = Replayed
	case v.forgotAny(&r, &p):
	case err != nil:
		r.Reason, r.Err = StoreUnavailable, err
	}
	return r
}

// pending is what check found of a password it accepted: the replay key,
// and what tells whether the store can vouch for it (a token's OTP step, a
// JWT's host and issue time).
type pending struct {
	key    replay.Key
	step   int64
	jwt    *jwtHost
	issued time.Time
}

// forgotAny is forgot or forgotJWT, for what p holds.
func (v *Verifier) forgotAny(r *Result, p *pending) bool {
	if p.jwt != nil {
		return v.forgotJWT(r, p.jwt, p.issued)
	}
	return v.forgot(r, p.step)
}

// forgot reports whether a token of the given OTP step could have been
// accepted before the store may have lost records, and if so refuses it
// with StoreForgot. Such a token's step is at most the step of that moment
// plus drift: a process that forgot could have accepted it. No I/O.
func (v *Verifier) forgot(r *Result, step int64) bool {
	at := v.store.ForgottenAt()
	if at.IsZero() || step > v.step(at)+int64(v.p.Drift) {
		return false
	}
	r.Reason, r.Forgot = StoreForgot, at
	r.Err = &ForgotError{At: at, Until: v.p.RefusalEnds(at)}
	return true
}

// Explain is Verify without recording: it reports Replayed if the store
// already holds the token, and Accepted if Verify would accept it now.
func (v *Verifier) Explain(ctx context.Context, user, hostname, password string) Result {
	return v.searched(v.Check(ctx, user, hostname, password), hostname, password)
}

// searched is r with, for OTPOutOfWindow, Explain's search for the OTP
// outside the window.
func (v *Verifier) searched(r Result, hostname, password string) Result {
	if r.Reason == OTPOutOfWindow {
		r.Offset, r.Seed, r.Far = v.nearest(hostname, password)
	}
	return r
}

// Check is Verify without recording, and Explain without its search for an
// OTP outside the window: it costs what Verify costs, so it can answer
// requests from a socket (Explain's search costs thousands of HMACs).
//
// A token the store cannot vouch for is StoreForgot, as in Verify: never
// Accepted, so that no one is told it is unused.
func (v *Verifier) Check(ctx context.Context, user, hostname, password string) Result {
	return v.decide(ctx, user, hostname, password, false)
}

// check verifies everything but freshness and returns what Verify needs to
// record the password.
func (v *Verifier) check(ctx context.Context, user, hostname, password string) (Result, pending) {
	if !validUser(user) {
		return Result{Reason: Malformed, Err: errBadUser()}, pending{}
	}
	if IsCompactJWS(password) {
		h, ok := v.hosts[hostname]
		switch {
		case !ok:
			return Result{Reason: UnknownHost, JWT: true, Seed: -1, Secret: -1}, pending{}
		case h.jwt == nil:
			return Result{Reason: Malformed, JWT: true, Seed: -1, Secret: -1,
				Err: verr("a JWT, but host %q accepts none: it has no JWT settings", hostname)}, pending{}
		}
		r, out := v.checkJWT(ctx, h.jwt, user, hostname, password)
		return r, pending{key: out.key, jwt: h.jwt, issued: out.issued}
	}
	key, step, r := v.checkToken(user, hostname, password)
	return r, pending{key: key, step: step}
}

// checkToken verifies everything of a token but freshness and returns its
// replay key and OTP step.
func (v *Verifier) checkToken(user, hostname, password string) (replay.Key, int64, Result) {
	var key replay.Key
	h, known := v.hosts[hostname]
	if known && len(h.seeds) == 0 {
		return key, 0, Result{Reason: Malformed,
			Err: verr("host %q accepts JWTs only, and the password is not one (three base64url segments separated by dots)", hostname)}
	}
	t, err := ParseToken(password, v.p.Digits)
	if err != nil {
		return key, 0, Result{Reason: Malformed, Err: err}
	}
	if v.p.NonceDigits != 0 && len(t.Nonce) != v.p.NonceDigits {
		return key, 0, Result{Reason: Malformed, Err: parseErr(v.p.Digits, fmt.Sprintf("nonce has %d digits, want %d", len(t.Nonce), v.p.NonceDigits))}
	}
	if !known {
		return key, 0, Result{Reason: UnknownHost}
	}
	r := Result{Reason: OTPOutOfWindow, Seed: -1, Secret: -1}
	step := v.step(v.now())
	for i := range h.seeds {
		if off, ok := h.seeds[i].match(step, v.p.Drift, t.OTP); ok {
			r.Offset, r.Seed = off, i
			break
		}
	}
	if r.Seed < 0 {
		return key, 0, r
	}
	m := v.scratch.Get().(*scratch)
	defer v.scratch.Put(m)
	for i := range h.secrets {
		if h.secrets[i].verify(m, &t, user, hostname, &key) {
			r.Secret = i
			r.Reason = Accepted
			return key, step + int64(r.Offset), r
		}
	}
	r.Reason = BadSignature
	return key, 0, r
}

func (v *Verifier) step(now time.Time) int64 {
	return now.Unix() / int64(v.p.Interval/time.Second)
}

// match reports whether code is the seed's code for a step within drift of
// step, and which.
func (s *seed) match(step int64, drift int, code string) (int, bool) {
	w := s.win.Load()
	if w == nil || w.step != step {
		w = &window{step: step, n: 2*drift + 1}
		for i := 0; i < w.n; i++ {
			at := i * s.digits
			w.lens[i] = uint8(len(s.appendCode(w.codes[at:at], step-int64(drift)+int64(i))))
		}
		s.win.Store(w)
	}
	found, off := 0, 0
	for i := 0; i < w.n; i++ {
		at := i * s.digits
		if subtle.ConstantTimeCompare(w.codes[at:at+int(w.lens[i])], []byte(code)) == 1 {
			found, off = 1, i-drift
		}
	}
	return off, found == 1
}

// code returns the seed's code of a time step ("" for a step before
// 1970).
func (s *seed) code(step int64) string { return string(s.appendCode(nil, step)) }

// appendCode appends the seed's code of a time step to b: HOTP (RFC 4226)
// of the step, HMAC-SHA1 dynamically truncated, as many decimal digits as
// the seed's, zero-padded; nothing for a step before 1970.
func (s *seed) appendCode(b []byte, step int64) []byte {
	if step < 0 {
		return b
	}
	s.mu.Lock()
	binary.BigEndian.PutUint64(s.counter[:], uint64(step))
	s.mac.Reset()
	s.mac.Write(s.counter[:])
	sum := s.mac.Sum(s.sum[:0])
	off := sum[len(sum)-1] & 0xf
	v := uint64(binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff)
	s.mu.Unlock()
	var digits [20]byte
	for i := s.digits - 1; i >= 0; i-- {
		digits[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, digits[:s.digits]...)
}

// searchSteps bounds the diagnostic search for an OTP outside the window:
// a day of steps either way at the default interval.
const searchSteps = 2880

// nearest finds the step, relative to now, whose code is the password's OTP,
// among searchSteps steps either way, for every seed of the host. It costs
// thousands of HMACs, so only Explain calls it.
func (v *Verifier) nearest(hostname, password string) (off, seedIndex int, far bool) {
	t, err := ParseToken(password, v.p.Digits)
	h, ok := v.hosts[hostname]
	if err != nil || !ok {
		return 0, -1, true
	}
	step := v.step(v.now())
	for d := int64(0); d <= searchSteps; d++ {
		for i := range h.seeds {
			s := &h.seeds[i]
			for _, sign := range [2]int64{-1, 1} {
				if s.code(step+sign*d) == t.OTP {
					return int(sign * d), i, false
				}
			}
		}
	}
	return 0, -1, true
}

// verify checks t's signature for user@hostname with this secret, in
// constant time, and on a match stores the token's replay key in key.
func (s *secret) verify(m *scratch, t *Token, user, hostname string, key *replay.Key) bool {
	b := append(m.buf[:0], t.OTP...)
	b = append(b, t.Nonce...)
	b = append(b, user...)
	b = append(b, '@')
	b = append(b, hostname...)
	sum, err := s.sum(m, b)
	ok := err == nil && hmac.Equal(sum, t.Signature[:])
	if ok {
		// The replay key: host, user, otp, nonce, each unambiguous (none
		// holds a NUL byte), so (user, otp, nonce) is never confused with
		// another split of the same signed message.
		b = append(b[:0], hostname...)
		b = append(b, 0)
		b = append(b, user...)
		b = append(b, 0)
		b = append(b, t.OTP...)
		b = append(b, 0)
		b = append(b, t.Nonce...)
		*key = replay.HashKey(b)
	}
	if cap(b) <= maxScratch {
		m.buf = b[:0]
	}
	return ok
}

// maxScratch bounds the message buffer a scratch keeps between tokens.
const maxScratch = 4096
