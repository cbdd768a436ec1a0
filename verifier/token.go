package verifier

import (
	"encoding/base64"
	"fmt"
)

// SignatureSize is the size of a token's HMAC-SHA256 signature.
const SignatureSize = 32

// maxSignatureText bounds the signature text, whitespace removed: 44
// characters make 32 bytes in padded base64; more can only be wrong.
const maxSignatureText = 64

// Token is a parsed mod_auth_token password: otp‖nonce, a space, and the
// standard base64 of the signature.
type Token struct {
	OTP       string // the first digits of the decimal part
	Nonce     string // the rest of the decimal part (possibly empty)
	Signature [SignatureSize]byte
}

// ParseToken splits password into a Token whose OTP has the given number of
// digits. Whitespace inside the base64 part is skipped, as mod_auth_token
// does; padding may be omitted.
func ParseToken(password string, digits int) (Token, error) {
	var t Token
	sp := -1
	for i := 0; i < len(password); i++ {
		c := password[i]
		if c == ' ' {
			sp = i
			break
		}
		if c < '0' || c > '9' {
			return t, parseErr(i, "expected a decimal digit or a space")
		}
	}
	switch {
	case sp < 0:
		return t, parseErr(len(password), "no space before the signature")
	case sp < digits:
		return t, parseErr(sp, fmt.Sprintf("fewer than %d digits before the space", digits))
	}
	t.OTP, t.Nonce = password[:digits], password[digits:sp]

	var text [maxSignatureText]byte
	n := 0
	for i := sp + 1; i < len(password); i++ {
		switch c := password[i]; c {
		case ' ', '\t', '\r', '\n':
			continue
		default:
			if n == len(text) {
				return t, parseErr(i, "signature too long")
			}
			text[n] = c
			n++
		}
	}
	enc := base64.StdEncoding
	if n%4 != 0 {
		enc = base64.RawStdEncoding
	}
	var sig [48]byte
	m, err := enc.Decode(sig[:], text[:n])
	if err != nil {
		return t, parseErr(sp+1, "signature is not standard base64")
	}
	if m != SignatureSize {
		return t, parseErr(sp+1, fmt.Sprintf("signature has %d bytes, want %d", m, SignatureSize))
	}
	copy(t.Signature[:], sig[:m])
	return t, nil
}
