package httpapi

import "strings"

// maxPart bounds a JID's local part and domain, as XMPP does (1,023
// bytes each).
const maxPart = 1023

// prohibited are the ASCII characters nodeprep refuses in a local part
// (RFC 6122, appendix A.5), besides spaces and controls.
const prohibited = "\"&'/:<>@"

// foldLocal case-folds a local part as ejabberd's and Prosody's nodeprep
// do for ASCII ('Alice' is 'alice': a token must be signed for the name
// the server hands over, or it fails with bad_signature) and refuses what
// nodeprep refuses. Local parts outside ASCII are refused: their folding
// (Unicode 3.2 tables, NFKC) is the servers' to do, and a name folded
// differently here would mint a token for another account.
func foldLocal(s string) (string, bool) {
	return foldASCII(s, func(c byte) bool { return strings.IndexByte(prohibited, c) >= 0 })
}

// foldDomain lower-cases an ASCII domain, as nameprep does, and refuses
// anything else.
func foldDomain(s string) (string, bool) {
	return foldASCII(s, func(c byte) bool { return c == '@' || c == '/' || c == ':' })
}

// foldASCII lower-cases s, a JID's part of at most maxPart bytes, and
// refuses it if it is empty or holds a space, a control character, a
// byte outside ASCII, or a byte refused says no to.
func foldASCII(s string, refused func(byte) bool) (string, bool) {
	if s == "" || len(s) > maxPart {
		return "", false
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c <= ' ' || c >= 0x7f || refused(c):
			return "", false
		}
	}
	return string(b), true
}

// splitJID splits a bare JID, user@host, and folds both parts.
func splitJID(jid string) (user, host string, ok bool) {
	u, h, found := strings.Cut(jid, "@")
	if !found {
		return "", "", false
	}
	if user, ok = foldLocal(u); !ok {
		return "", "", false
	}
	if host, ok = foldDomain(h); !ok {
		return "", "", false
	}
	return user, host, true
}
