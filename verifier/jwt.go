package verifier

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/text/secure/precis"

	"github.com/tokenauthd/tokenauthd/replay"
)

// A host may also accept single-use JSON Web Tokens (RFC 7519) signed by
// its application: a password that is a compact JWS (IsCompactJWS) goes to
// the host's JWT settings, any other to its token secrets. A JWT is
// accepted when its "alg" is allowed and fits the key its "kid" names, the
// signature verifies, the JID claim is user@host exactly, "exp" is present
// and in the future, "nbf" and "iat" are not in the future, its lifetime
// is at most MaxLifetime, it has a "jti", and its ("iss", "jti") pair was
// never accepted before (the pair is then recorded in the replay store).
//
// A host without a JWT section refuses a JWT as Malformed, and a host with
// a JWT section but no token secrets refuses anything else as Malformed:
// the password is not what the host accepts.

// The reasons only the JWT path gives. Malformed, UnknownHost,
// BadSignature, Replayed, StoreUnavailable and StoreForgot are shared with
// tokens.
const (
	Expired             Reason = "expired"               // "exp" has passed (beyond the leeway)
	NotYetValid         Reason = "not_yet_valid"         // "nbf" or "iat" is in the future (beyond the leeway)
	LifetimeTooLong     Reason = "lifetime_too_long"     // no "exp", or "exp" too far after "iat" (or now)
	MissingJTI          Reason = "missing_jti"           // no "jti": single use cannot be enforced
	WrongJID            Reason = "wrong_jid"             // the JID claim is not user@host
	UnknownKey          Reason = "unknown_key"           // "kid" names no key of the set
	AlgorithmNotAllowed Reason = "algorithm_not_allowed" // "alg" not allowed, or not the key's
	WrongIssuer         Reason = "wrong_issuer"          // "iss" is not the configured issuer
	WrongAudience       Reason = "wrong_audience"        // "aud" lacks the configured audience
	// KeysUnavailable: the host's keys are fetched (JWT.Keys), and no set
	// may be used: none was fetched yet, or the last was fetched too long
	// ago.
	KeysUnavailable Reason = "keys_unavailable"
)

// Defaults of a host's JWT settings (the configuration file's).
const (
	DefaultJIDClaim       = "jid" // as ejabberd's jwt_jid_field
	DefaultJWTMaxLifetime = 300 * time.Second
	DefaultJWTLeeway      = 30 * time.Second
)

// DefaultJWTAlgorithms returns the algorithms allowed when none are
// configured: the asymmetric ones applications mostly use.
func DefaultJWTAlgorithms() []string { return []string{"EdDSA", "ES256", "RS256"} }

// Bounds of the JWT settings and of what a JWT may be.
const (
	MaxJWTLifetime = 24 * time.Hour  // the largest MaxLifetime
	MaxJWTLeeway   = 5 * time.Minute // the largest Leeway
	MaxJWTKeys     = 16              // keys in a set
	// MaxFetchedKeys bounds the keys of a fetched set: providers publish
	// a few, for rotation, and some for encryption too.
	MaxFetchedKeys = 64
	// MaxJWTSize bounds a JWT: one signed with a 4096-bit RSA key and a
	// few hundred bytes of claims is under 1.5 KiB.
	MaxJWTSize = 8 << 10
	// minRSABits is the smallest RSA modulus a key set may hold.
	minRSABits = 2048
	// minHMACKey is the shortest symmetric key: HS256's hash size (RFC
	// 7518 §3.2); HS384 and HS512 need 48 and 64 bytes.
	minHMACKey = 32
)

// JWT is one host's settings for JSON Web Tokens.
type JWT struct {
	// KeySet is a JWK Set (RFC 7517 §5), JSON: the keys that verify JWTs,
	// each named by its "kid" (a set of one key may go without). Public
	// keys (kty RSA, EC, OKP) or symmetric ones (kty oct, for HS256);
	// private keys are refused.
	KeySet []byte
	// Keys, if set, gives the key set instead of KeySet: a set fetched
	// from an identity provider, which changes while the verifier serves.
	// Such sets must hold public keys only (ParseKeySet).
	Keys KeySource
	// Algorithms is the allowlist of "alg" values, of RS256, RS384,
	// RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256,
	// HS384, HS512 (never "none").
	Algorithms []string
	// JIDClaim names the claim that holds user@host.
	JIDClaim string
	// UserClaim, if set, names the claim that holds the user's local
	// part instead (OpenID Connect's "preferred_username"), the host
	// being the one the server passed; JIDClaim is then unused. The claim
	// is compared after the case folding XMPP applies to local parts
	// (PRECIS UsernameCaseMapped, RFC 8265), as the server's name is.
	UserClaim string
	// Issuer, if set, is what "iss" must equal; Audience, if set, what
	// "aud" must contain.
	Issuer, Audience string
	// MaxLifetime bounds exp - iat (exp - now without iat): 1 s to
	// MaxJWTLifetime.
	MaxLifetime time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat: 0 to
	// MaxJWTLeeway.
	Leeway time.Duration
}

// ReplayTTL is how long the replay store must keep an accepted JWT's
// record: exp is at most MaxLifetime plus the leeway after the moment it
// is accepted, and the JWT must stay refused past exp plus any leeway a
// later configuration may allow (up to MaxJWTLeeway), not only today's:
// an admin who raises the leeway must not revive the JWTs recorded
// before.
func (j *JWT) ReplayTTL() time.Duration { return j.MaxLifetime + j.Leeway + MaxJWTLeeway }

// HasSymmetricKey reports whether the key set holds a symmetric (oct) key:
// a secret, where the other keys are public. It reports false for a set
// that does not parse.
func (j *JWT) HasSymmetricKey() bool {
	var set struct {
		Keys []jwkMembers `json:"keys"`
	}
	if json.Unmarshal(j.KeySet, &set) != nil {
		return false
	}
	return slices.ContainsFunc(set.Keys, func(k jwkMembers) bool { return k.Kty == "oct" })
}

// Validate reports whether the settings can be used: the key set parses
// (or there is a key source), every key fits an allowed algorithm, and
// the other values are in their bounds. Its errors never quote a key.
func (j *JWT) Validate() error {
	_, err := newJWTHost(j, nil, false)
	return err
}

// ValidateFetched is Validate for settings whose keys will be fetched,
// before there is a source: every check but the keys'.
func (j *JWT) ValidateFetched() error {
	_, err := newJWTHost(j, nil, true)
	return err
}

// claimName is the name of the claim that names the user.
func (j *JWT) claimName() string {
	if j.UserClaim != "" {
		return j.UserClaim
	}
	return j.JIDClaim
}

// jwtAlgs are the algorithms a JWT may be allowed to use.
var jwtAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512"}

// keyFits reports whether alg may verify with key: HMAC with a symmetric
// key at least as long as its hash, RSA (PKCS #1 v1.5 or PSS) with an RSA
// key, ECDSA with a key on its own curve, EdDSA with an Ed25519 key.
func keyFits(alg string, key any) bool {
	switch k := key.(type) {
	case []byte:
		switch alg {
		case "HS256":
			return len(k) >= 32
		case "HS384":
			return len(k) >= 48
		case "HS512":
			return len(k) >= 64
		}
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// jwtHost is a host's JWT settings made ready: keys parsed, parser built.
type jwtHost struct {
	parser      *jwt.Parser
	keyfunc     jwt.Keyfunc
	algs        []string
	static      *KeySet   // the keys of KeySet; nil when fetched
	src         KeySource // the keys fetched; nil with KeySet
	issuer      string
	jidClaim    string // the claim that names the user (JID or, with userClaim, local part)
	userClaim   bool   // jidClaim holds the local part only
	maxLifetime time.Duration
	leeway      time.Duration
	// claims is the type JWT payloads decode into: the registered claims
	// and the JID claim, under its configured name (jidField), so that one
	// decoding reads them all.
	claims   reflect.Type
	jidField int
	// names are the claims' names, which a payload must spell exactly
	// (encoding/json would read "JID" as "jid") and give once.
	names []string
}

// jwtKey is one key of a set.
type jwtKey struct {
	kid   string
	named bool   // the JWK has a kid, if empty
	alg   string // the JWK's own "alg", if any: the only one it verifies
	key   any    // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// The fields of a jwtHost's claims type, in order; the JID claim's is
// jidField (fieldSub when the JID claim is "sub").
const (
	fieldIss = iota
	fieldSub
	fieldAud
	fieldExp
	fieldNbf
	fieldIat
	fieldJti
	fieldJID
)

// checkJIDClaim reports whether name can be the JID claim's: not empty,
// at most 64 bytes, none of the registered claims but "sub", in any case
// (Go's JSON decoding matches names regardless of case), and made of what
// encoding/json takes for a field's name: letters, digits and the
// punctuation jidClaimPunct (no quote, backslash or comma).
func checkJIDClaim(name string) error {
	if name == "" || len(name) > 64 {
		return verr("the JWT JID claim's name must be 1 to 64 bytes")
	}
	for _, c := range name {
		if !unicode.IsLetter(c) && !unicode.IsDigit(c) && !strings.ContainsRune(jidClaimPunct, c) {
			return verr("the JWT JID claim's name %q holds %q: only letters, digits and %s", name, c, jidClaimPunct)
		}
	}
	for _, r := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"} {
		if strings.EqualFold(name, r) && name != "sub" {
			return verr("the JWT JID claim cannot be %q: a registered claim", name)
		}
	}
	return nil
}

// newJWTHost checks j and makes it ready. now is the verifier's clock;
// validating, j may have no keys yet.
func newJWTHost(j *JWT, now func() time.Time, validating bool) (*jwtHost, error) {
	name := j.claimName()
	h := &jwtHost{issuer: j.Issuer, jidClaim: name, userClaim: j.UserClaim != "", maxLifetime: j.MaxLifetime, leeway: j.Leeway}
	if err := j.checkBounds(); err != nil {
		return nil, err
	}
	if err := checkJIDClaim(name); err != nil {
		return nil, err
	}
	for _, a := range j.Algorithms {
		switch {
		case strings.EqualFold(a, "none"):
			return nil, verr("JWT algorithm %q is never allowed: a JWT must be signed", a)
		case !slices.Contains(jwtAlgs, a):
			return nil, verr("JWT algorithm %q is not one of %s", a, strings.Join(jwtAlgs, ", "))
		case slices.Contains(h.algs, a):
			return nil, verr("JWT algorithm %q is listed twice", a)
		}
		h.algs = append(h.algs, a)
	}
	switch {
	case j.Keys != nil && j.KeySet != nil:
		return nil, verr("JWT settings with both a key set and a key source")
	case j.Keys != nil:
		h.src = j.Keys
	case j.KeySet != nil || !validating:
		set, err := parseKeySet(h.algs, j.KeySet, false)
		if err != nil {
			return nil, err
		}
		h.static = set
	}
	h.claims, h.jidField = claimsType(name)
	if !probeClaimsType(h.claims, h.jidField, name) {
		return nil, verr("the JWT JID claim %q cannot be read", name)
	}
	h.names = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}
	if !slices.Contains(h.names, name) {
		h.names = append(h.names, name)
	}
	h.parser = jwt.NewParser(j.parserOptions(h.algs, now)...)
	h.keyfunc = keyFor
	return h, nil
}

// checkBounds checks the settings' values that have bounds.
func (j *JWT) checkBounds() error {
	switch {
	case j.MaxLifetime < time.Second || j.MaxLifetime > MaxJWTLifetime:
		return verr("JWT max lifetime must be 1 s to %v, not %v", MaxJWTLifetime, j.MaxLifetime)
	case j.Leeway < 0 || j.Leeway > MaxJWTLeeway:
		return verr("JWT leeway must be 0 to %v, not %v", MaxJWTLeeway, j.Leeway)
	case len(j.Algorithms) == 0:
		return verr("no JWT algorithm is allowed")
	case len(j.Issuer) > 1024 || len(j.Audience) > 1024:
		return verr("the JWT issuer and audience must be at most 1024 bytes")
	}
	return nil
}

// parserOptions are the options of the host's JWT parser.
func (j *JWT) parserOptions(algs []string, now func() time.Time) []jwt.ParserOption {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(j.Leeway),
		jwt.WithStrictDecoding(),
	}
	if now != nil {
		opts = append(opts, jwt.WithTimeFunc(now))
	}
	if j.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(j.Issuer))
	}
	if j.Audience != "" {
		// A string aud, or an array holding it (golang-jwt's rule).
		opts = append(opts, jwt.WithAudience(j.Audience))
	}
	return opts
}

// jwkMembers are the members of a JWK that say what it is, and whether it
// holds private or secret material.
type jwkMembers struct {
	Kty    string          `json:"kty"`
	Kid    *string         `json:"kid"`
	Alg    string          `json:"alg"`
	Use    string          `json:"use"`
	KeyOps []string        `json:"key_ops"`
	D      json.RawMessage `json:"d"`
}

// validJWK is go-jose's Valid, which knows of no symmetric key, and for
// a symmetric key whether it has one.
func validJWK(k *jose.JSONWebKey) bool {
	if b, ok := k.Key.([]byte); ok {
		return len(b) > 0
	}
	return k.Valid()
}

// fits reports whether alg may verify with the key.
func (k *jwtKey) fits(alg string) bool {
	return (k.alg == "" || k.alg == alg) && keyFits(alg, k.key)
}

// jidClaimPunct is the punctuation a JID claim's name may hold.
const jidClaimPunct = "!#$%&()*+-./:;<=>?@[]^_{|}~ "

// claimsType returns the struct type a payload decodes into: the
// registered claims, then the JID claim under its name, and the index of
// the JID claim's field ("sub" is its own).
func claimsType(jidClaim string) (reflect.Type, int) {
	str, date := reflect.TypeFor[string](), reflect.TypeFor[*jwt.NumericDate]()
	fields := []reflect.StructField{
		{Name: "Iss", Type: str, Tag: `json:"iss"`},
		{Name: "Sub", Type: str, Tag: `json:"sub"`},
		{Name: "Aud", Type: reflect.TypeFor[jwt.ClaimStrings](), Tag: `json:"aud"`},
		{Name: "Exp", Type: date, Tag: `json:"exp"`},
		{Name: "Nbf", Type: date, Tag: `json:"nbf"`},
		{Name: "Iat", Type: date, Tag: `json:"iat"`},
		{Name: "Jti", Type: str, Tag: `json:"jti"`},
	}
	if jidClaim == "sub" {
		return reflect.StructOf(fields), fieldSub
	}
	tag, _ := json.Marshal(jidClaim) // a quoted string: a valid tag value
	fields = append(fields, reflect.StructField{Name: "JID", Type: str,
		Tag: reflect.StructTag(`json:` + string(tag))})
	return reflect.StructOf(fields), fieldJID
}

// probeClaimsType reports whether the JID claim decodes into the type's
// JID field, and a claim "JID" does not (unless it is the JID claim in
// another case): a name encoding/json did not take for a tag would make
// the field's own name, JID, the claim.
func probeClaimsType(t reflect.Type, jidField int, jidClaim string) bool {
	decode := func(claim string) string {
		payload, _ := json.Marshal(map[string]string{claim: "probe"})
		p := reflect.New(t)
		if json.Unmarshal(payload, p.Interface()) != nil {
			return ""
		}
		return p.Elem().Field(jidField).String()
	}
	return decode(jidClaim) == "probe" && (strings.EqualFold(jidClaim, "JID") || decode("JID") == "")
}

// jwtClaims are one JWT's claims, and the key the JWT named.
type jwtClaims struct {
	jwt.RegisteredClaims
	jid string
	h   *jwtHost
	set *KeySet // the keys to verify with
	key *jwtKey
}

// errClaimName refuses a payload that names a claim in another case, or
// twice: encoding/json would take "JID" for "jid", and the last of two
// for the one, where the issuer (and PyJWT, and ejabberd) may read
// another. An application that copies its users' claims into its JWTs
// must not let them choose the account.
var errClaimName = errors.New("a claim is named twice, or in another case")

// checkNames reports whether the payload's members spell the host's
// claims exactly and give each at most once. It reads only the top
// level's member names, in one pass without allocating but for a name
// written with escapes; what is not well-formed JSON it leaves to the
// decoder, which refuses it.
func (h *jwtHost) checkNames(b []byte) error {
	var seen uint32 // bit i: h.names[i] was given
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			end := stringEnd(b, i)
			if end < 0 {
				return nil // unterminated: not JSON
			}
			key := b[i+1 : end]
			i = end
			// A member name: at the top level, followed by a colon.
			if depth != 1 || !nextIsColon(b, end+1) {
				continue
			}
			if bytes.IndexByte(key, '\\') >= 0 { // rare: unescape it
				var name string
				if json.Unmarshal(b[i-len(key)-1:end+1], &name) != nil {
					return errClaimName
				}
				key = []byte(name)
			}
			for j, n := range h.names {
				exact := string(key) == n
				switch {
				case exact && seen&(1<<j) != 0, !exact && bytes.EqualFold(key, []byte(n)):
					return errClaimName
				case exact:
					seen |= 1 << j
				}
			}
		}
	}
	return nil
}

// stringEnd returns the index of the quote that closes the JSON string
// opening at b[start], or -1.
func stringEnd(b []byte, start int) int {
	for i := start + 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// nextIsColon reports whether the first byte at or after i that is not
// JSON white space is a colon.
func nextIsColon(b []byte, i int) bool {
	for ; i < len(b); i++ {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
		case ':':
			return true
		default:
			return false
		}
	}
	return false
}

// UnmarshalJSON decodes a payload through the host's claims type.
func (c *jwtClaims) UnmarshalJSON(b []byte) error {
	if err := c.h.checkNames(b); err != nil {
		return err
	}
	p := reflect.New(c.h.claims)
	if err := json.Unmarshal(b, p.Interface()); err != nil {
		return err
	}
	v := p.Elem()
	c.Issuer = v.Field(fieldIss).String()
	c.Subject = v.Field(fieldSub).String()
	// Through pointers: an interface holding a pointer costs no
	// allocation.
	c.Audience = *v.Field(fieldAud).Addr().Interface().(*jwt.ClaimStrings)
	c.ExpiresAt = *v.Field(fieldExp).Addr().Interface().(**jwt.NumericDate)
	c.NotBefore = *v.Field(fieldNbf).Addr().Interface().(**jwt.NumericDate)
	c.IssuedAt = *v.Field(fieldIat).Addr().Interface().(**jwt.NumericDate)
	c.ID = v.Field(fieldJti).String()
	c.jid = v.Field(c.h.jidField).String()
	return nil
}

// Why the key function refuses a JWT.
var (
	errUnknownKey = errors.New("no key of the set has the JWT's kid")
	errKeyAlg     = errors.New("the JWT's alg does not fit its key")
	errCrit       = errors.New("the JWT has critical header parameters")
)

// keyFor is the parser's key function: the key the JWT's kid names (or
// the set's only key, for a JWT without kid), if its alg fits that key.
// The set is the claims' (jwtClaims.set).
func keyFor(t *jwt.Token) (any, error) {
	c, ok := t.Claims.(*jwtClaims)
	if !ok || c.set == nil {
		return nil, errUnknownKey
	}
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: extensions this verifier does not know of
		// must be refused.
		return nil, errCrit
	}
	var k *jwtKey
	if kid, ok := t.Header["kid"]; !ok {
		k = c.set.only
	} else if s, ok := kid.(string); ok {
		k = c.set.keys[s]
	}
	if k == nil {
		return nil, errUnknownKey
	}
	if !k.fits(t.Method.Alg()) {
		return nil, errKeyAlg
	}
	c.key = k
	return k.key, nil
}

// IsCompactJWS reports whether password has the shape of a compact JWS
// (RFC 7515 §7.1): three segments of base64url characters separated by
// dots, the first two not empty. A mod_auth_token token never has it (it
// holds a space), so it is what sends a password to the JWT checks.
func IsCompactJWS(password string) bool {
	dots, last := 0, -1
	for i := 0; i < len(password); i++ {
		switch c := password[i]; {
		case c == '.':
			if i == last+1 && dots < 2 { // an empty header or payload
				return false
			}
			dots, last = dots+1, i
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return dots == 2
}

// jwtVerdict is what the JWT checks found, besides the Result.
type jwtVerdict struct {
	key    replay.Key
	issued time.Time // iat, or exp - MaxLifetime without it
}

// checkJWT verifies everything of a JWT for user@hostname but freshness.
func (v *Verifier) checkJWT(ctx context.Context, h *jwtHost, user, hostname, password string) (Result, jwtVerdict) {
	r := Result{Reason: Malformed, JWT: true, Seed: -1, Secret: -1}
	var out jwtVerdict
	if len(password) > MaxJWTSize {
		r.Err = verr("the JWT is longer than %d bytes", MaxJWTSize)
		return r, out
	}
	set := h.static
	if h.src != nil {
		var err error
		if set, err = h.src.KeySet(ctx); err != nil || set == nil {
			r.Reason, r.Err = KeysUnavailable, keysUnavailable(err)
			return r, out
		}
	}
	c := &jwtClaims{h: h, set: set}
	t, err := h.parser.ParseWithClaims(password, c, h.keyfunc)
	if h.src != nil && errors.Is(err, errUnknownKey) {
		// A kid the set lacks: the provider may have rotated its keys.
		if fresh := h.src.Refresh(ctx, set); fresh != nil && fresh != set {
			c = &jwtClaims{h: h, set: fresh}
			t, err = h.parser.ParseWithClaims(password, c, h.keyfunc)
		}
	}
	if c.key != nil {
		r.KeyID = c.key.kid
	}
	if err != nil {
		r.Reason, r.Err = h.refusal(t, c, err)
		return r, out
	}
	now := v.now()
	exp := c.ExpiresAt.Time
	if c.IssuedAt != nil {
		if life := exp.Sub(c.IssuedAt.Time); life > h.maxLifetime {
			r.Reason, r.Err = LifetimeTooLong, verr("the JWT lives %v from iat to exp: at most %v", life, h.maxLifetime)
			return r, out
		}
		out.issued = c.IssuedAt.Time
	} else {
		// Without iat, the lifetime left is all there is to judge, on
		// the issuer's clock: the leeway allows for it.
		if life := exp.Sub(now); life > h.maxLifetime+h.leeway {
			r.Reason, r.Err = LifetimeTooLong, verr("the JWT, without iat, expires %v from now: at most %v (max lifetime %v, leeway %v)",
				life.Truncate(time.Second), h.maxLifetime+h.leeway, h.maxLifetime, h.leeway)
			return r, out
		}
		out.issued = exp.Add(-h.maxLifetime)
	}
	if c.ID == "" {
		r.Reason, r.Err = MissingJTI, verr("the JWT has no jti: it could not be used once only")
		return r, out
	}
	if h.userClaim && !isLocalPart(c.jid, user) {
		r.Reason, r.Err = WrongJID, verr("the JWT's %q claim, case-folded, is not %s, as the server sent it", h.jidClaim, user)
		return r, out
	}
	if !h.userClaim && !isJID(c.jid, user, hostname) {
		r.Reason, r.Err = WrongJID, verr("the JWT's %q claim is not %s@%s, as the server sent them", h.jidClaim, user, hostname)
		return r, out
	}
	r.Reason = Accepted
	out.key = jwtReplayKey(c.Issuer, c.ID)
	return r, out
}

// isJID reports whether jid is user@host, byte for byte.
func isJID(jid, user, host string) bool {
	return len(jid) == len(user)+1+len(host) && jid[:len(user)] == user &&
		jid[len(user)] == '@' && jid[len(user)+1:] == host
}

// isLocalPart reports whether claim, case-folded as XMPP folds local parts
// (PRECIS UsernameCaseMapped), is user byte for byte. A claim the profile
// refuses is no one.
func isLocalPart(claim, user string) bool {
	folded, err := precis.UsernameCaseMapped.String(claim)
	return err == nil && folded == user
}

// keysUnavailable is the error of a KeysUnavailable refusal.
func keysUnavailable(err error) error {
	if err == nil {
		return verr("the host's keys are fetched, and there is no key set yet")
	}
	return verr("the host's keys are fetched, and none may be used: %s", Detail(err))
}

// jwtKeyDomain starts the material of every JWT replay key. The material
// of a token's key starts with its host name, whose first byte is never a
// NUL: the two kinds cannot share a key but by a hash collision.
const jwtKeyDomain = "\x00tokenauthd jwt\x00"

// jwtReplayKey is the replay key of the (iss, jti) pair: iss's length
// first, so that no other split of the same bytes makes the same key.
func jwtReplayKey(iss, jti string) replay.Key {
	var buf [256]byte
	b := append(buf[:0], jwtKeyDomain...)
	b = binary.AppendUvarint(b, uint64(len(iss)))
	b = append(b, iss...)
	b = append(b, jti...)
	return replay.HashKey(b)
}

// refusal maps the parser's error to a reason and an error of the
// verifier's own, which quotes nothing of the JWT.
func (h *jwtHost) refusal(t *jwt.Token, c *jwtClaims, err error) (Reason, error) {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return Malformed, verr("not a JWT: its header, payload or signature is not base64url of JSON objects with claims of the right types")
	case errors.Is(err, errCrit):
		return Malformed, verr("the JWT has critical header parameters (crit), which this verifier does not know")
	case errors.Is(err, errUnknownKey):
		return UnknownKey, verr("no key of the set has the JWT's kid (a JWT without kid needs a set of one key)")
	case errors.Is(err, errKeyAlg):
		return AlgorithmNotAllowed, verr("the JWT's alg %q does not fit the key its kid names", t.Method.Alg())
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// No alg, or one the library does not know.
		if _, ok := t.Header["alg"].(string); ok {
			return AlgorithmNotAllowed, verr("the JWT's alg is none this verifier knows (allowed: %s)", strings.Join(h.algs, ", "))
		}
		return Malformed, verr("the JWT's header has no alg")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if alg := t.Method.Alg(); !slices.Contains(h.algs, alg) {
			return AlgorithmNotAllowed, verr("the JWT's alg %q is not allowed (allowed: %s)", alg, strings.Join(h.algs, ", "))
		}
		return BadSignature, nil
	case errors.Is(err, jwt.ErrTokenExpired):
		return Expired, verr("the JWT expired at %s (leeway %v)", c.ExpiresAt.UTC().Format(time.RFC3339), h.leeway)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return NotYetValid, verr("the JWT is not valid before %s (nbf; leeway %v)", c.NotBefore.UTC().Format(time.RFC3339), h.leeway)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return NotYetValid, verr("the JWT is issued at %s, in the future (iat; leeway %v)", c.IssuedAt.UTC().Format(time.RFC3339), h.leeway)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return WrongIssuer, verr("the JWT's iss is not the configured issuer")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return WrongAudience, verr("the JWT's aud does not hold the configured audience")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case c.ExpiresAt == nil:
			return LifetimeTooLong, verr("the JWT has no exp: it would never expire")
		case h.issuer != "" && c.Issuer == "":
			return WrongIssuer, verr("the JWT has no iss, and an issuer is configured")
		}
		return WrongAudience, verr("the JWT has no aud, and an audience is configured")
	}
	return Malformed, verr("the JWT's claims are not valid")
}

// forgotJWT reports whether a JWT issued at issued could have been
// accepted before the store may have lost records, and if so refuses it
// with StoreForgot. A JWT accepted at a moment t had its iat at most t +
// leeway (or, without iat, exp at most t + MaxLifetime + leeway): one
// issued up to the loss plus the leeway may have been accepted.
func (v *Verifier) forgotJWT(r *Result, h *jwtHost, issued time.Time) bool {
	at := v.store.ForgottenAt()
	if at.IsZero() || issued.After(at.Add(h.leeway)) {
		return false
	}
	r.Reason, r.Forgot = StoreForgot, at
	r.Err = &ForgotError{At: at, Until: h.refusalEnds(at)}
	return true
}

// refusalEnds returns when the StoreForgot refusals of JWTs with an iat
// that follow a loss of records at forgot end: the first whole second
// after forgot plus the leeway.
func (h *jwtHost) refusalEnds(forgot time.Time) time.Time { return jwtRefusalEnds(forgot, h.leeway) }

func jwtRefusalEnds(forgot time.Time, leeway time.Duration) time.Time {
	return forgot.Add(leeway).Truncate(time.Second).Add(time.Second)
}
