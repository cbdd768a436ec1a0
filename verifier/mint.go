package verifier

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// NonceDigits is the length of the nonces NewNonce makes: 32 digits, as
// mod_auth_token's documentation does, about 106 bits.
const NonceDigits = 32

// NewNonce returns NonceDigits random decimal digits from crypto/rand:
// each from a random byte below 250 (25 times 10, so every digit is
// equally likely), the others drawn again.
func NewNonce() (string, error) {
	digits := make([]byte, 0, NonceDigits)
	var buf [NonceDigits + NonceDigits/4]byte
	for len(digits) < NonceDigits {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", &Error{Msg: "nonce: " + err.Error(), Err: err}
		}
		for _, b := range buf {
			if b < 250 && len(digits) < NonceDigits {
				digits = append(digits, '0'+b%10)
			}
		}
	}
	return string(digits), nil
}

// Sign returns a token for user@host made of the given OTP, nonce and
// secret. It is the whole token algorithm, for applications and tests.
func Sign(secret []byte, otp, nonce, user, host string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(otp + nonce + user + "@" + host))
	return otp + nonce + " " + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Mint returns a token for user@host valid at the given time, made with the
// host's current seed and secret and the given nonce (a fresh random one if
// empty).
func (v *Verifier) Mint(user, hostname string, at time.Time, nonce string) (string, error) {
	h, ok := v.hosts[hostname]
	if !ok {
		return "", verr("unknown host %q", hostname)
	}
	if len(h.seeds) == 0 {
		return "", verr("host %q has no token secret and otp seed: it accepts JWTs only", hostname)
	}
	if !validUser(user) {
		return "", errBadUser()
	}
	if nonce == "" {
		n := NonceDigits
		if v.p.NonceDigits != 0 {
			n = v.p.NonceDigits
		}
		var err error
		for nonce = ""; len(nonce) < n && err == nil; {
			var more string
			more, err = NewNonce()
			nonce += more
		}
		if err != nil {
			return "", err
		}
		nonce = nonce[:n]
	}
	for i := 0; i < len(nonce); i++ {
		if nonce[i] < '0' || nonce[i] > '9' {
			return "", verr("nonce must be decimal digits")
		}
	}
	code := h.seeds[0].code(v.step(at))
	if code == "" {
		return "", verr("time before the epoch")
	}
	return Sign(h.secrets[0].key, code, nonce, user, hostname), nil
}
