package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		body string
		want Request
		ok   bool
	}{
		// auth: four fields.
		{"auth:alice:example.org:secret", Request{CmdAuth, "alice", "example.org", "secret"}, true},
		// The password is the last field and keeps every ':' it holds.
		{"auth:alice:example.org:a:b::c:", Request{CmdAuth, "alice", "example.org", "a:b::c:"}, true},
		// A password that is only colons.
		{"auth:alice:example.org:::", Request{CmdAuth, "alice", "example.org", "::"}, true},
		// An empty password is a (wrong) password, not a malformed request.
		{"auth:alice:example.org:", Request{CmdAuth, "alice", "example.org", ""}, true},
		// A token: digits, a space, base64 with '+', '/' and '='.
		{"auth:bob:h:1234567890 ab+/cd==", Request{CmdAuth, "bob", "h", "1234567890 ab+/cd=="}, true},
		// auth without a password field.
		{"auth:alice:example.org", Request{}, false},
		// auth with only a user.
		{"auth:alice", Request{}, false},
		// The command alone.
		{"auth", Request{}, false},
		// isuser: three fields.
		{"isuser:alice:example.org", Request{CmdIsUser, "alice", "example.org", ""}, true},
		// isuser with a fourth field.
		{"isuser:alice:example.org:x", Request{}, false},
		// isuser with two fields.
		{"isuser:alice", Request{}, false},
		// setpass: four fields.
		{"setpass:alice:example.org:new:pw", Request{CmdSetPass, "alice", "example.org", "new:pw"}, true},
		// setpass without a password.
		{"setpass:alice:example.org", Request{}, false},
		// tryregister: four fields.
		{"tryregister:alice:example.org:pw", Request{CmdTryRegister, "alice", "example.org", "pw"}, true},
		// tryregister with three.
		{"tryregister:alice:example.org", Request{}, false},
		// removeuser: three fields.
		{"removeuser:alice:example.org", Request{CmdRemoveUser, "alice", "example.org", ""}, true},
		// removeuser with a password is not removeuser.
		{"removeuser:alice:example.org:pw", Request{}, false},
		// removeuser3: four fields.
		{"removeuser3:alice:example.org:pw", Request{CmdRemoveUser3, "alice", "example.org", "pw"}, true},
		// removeuser3 without a password.
		{"removeuser3:alice:example.org", Request{}, false},
		// certauth: the certificate is the last field, colons and all.
		{"certauth:alice:example.org:MII:x", Request{CmdCertAuth, "alice", "example.org", "MII:x"}, true},
		// certauth without a certificate.
		{"certauth:alice:example.org", Request{}, false},
		// An unknown command.
		{"login:alice:example.org:pw", Request{}, false},
		// Commands are case-sensitive.
		{"AUTH:alice:example.org:pw", Request{}, false},
		// The empty request.
		{"", Request{}, false},
		// Only separators.
		{":::", Request{}, false},
		// A command with a trailing space.
		{"auth :alice:example.org:pw", Request{}, false},
		// Empty user and server are passed on: the handler refuses them.
		{"auth:::pw", Request{CmdAuth, "", "", "pw"}, true},
		// Bytes that are not UTF-8 in the password are kept as they are.
		{"auth:a:b:\xff\x00", Request{CmdAuth, "a", "b", "\xff\x00"}, true},
	}
	for _, tt := range tests {
		got, err := ParseRequest(tt.body)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("ParseRequest(%q) = %+v, %v, want %+v, nil", tt.body, got, err, tt.want)
			}
			continue
		}
		var perr *ProtocolError
		if !errors.As(err, &perr) {
			t.Errorf("ParseRequest(%q) = %+v, %v, want a *ProtocolError", tt.body, got, err)
			continue
		}
		if got != (Request{}) {
			t.Errorf("ParseRequest(%q) = %+v with an error, want the zero Request", tt.body, got)
		}
		// The error never quotes the request: it may hold a password.
		if strings.Contains(err.Error(), "alice") || strings.Contains(err.Error(), "pw") {
			t.Errorf("ParseRequest(%q) error %q quotes the request", tt.body, err)
		}
	}
}
