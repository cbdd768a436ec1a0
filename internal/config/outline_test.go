package config

import (
	"reflect"
	"strings"
	"testing"
)

// The outline names the socket, the store, the hosts and every secret and
// key file, defaults filled in, without reading a secret; a file that is
// not TOML, or of the wrong types, is refused without being quoted.
func TestReadOutline(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    *Outline
		wantErr string
	}{
		{"defaults", "[hosts.\"b.example\"]\ntoken_secret = \"" + leakySecret + "\"\n[hosts.\"a.example\"]\n",
			&Outline{Socket: DefaultSocket, Store: "memory", Hosts: []string{"a.example", "b.example"}, EveryName: []string{"a.example", "b.example"}}, ""},
		{"everything", `[daemon]
socket = "/run/t/s.sock"
socket_group = "xmpp"
[replay]
store = "redis"
redis_password_file = "/etc/t/redis"
[hosts."a.example"]
token_secret_file = "/etc/t/a.secret"
otp_seed_file = "%d/a.seed"
[hosts."a.example".jwt]
keys_file = "/etc/t/a.jwks"
[hosts."b.example"]
otp_seed_file = "/etc/t/b.seed"
isuser = "seen"
[hosts."c.example"]
isuser = false
[hosts."d.example"]
isuser = true
`, &Outline{Socket: "/run/t/s.sock", SocketGroup: "xmpp", Store: "redis", Hosts: []string{"a.example", "b.example", "c.example", "d.example"},
			EveryName: []string{"a.example", "d.example"},
			Files:     []string{"/etc/t/redis", "/etc/t/a.secret", "/etc/t/a.jwks", "/etc/t/b.seed"}, Credentials: true}, ""},
		// Keys it does not know are Parse's to refuse.
		{"unknown key", "[replay]\njornal = \"/x\"\n", &Outline{Socket: DefaultSocket, Store: "memory"}, ""},
		{"syntax", "[hosts.\"a\"]\ntoken_secret = " + leakySecret + "\n", nil, "c.toml:2: syntax error"},
		{"wrong type", "[daemon]\nsocket = 1\n", nil, "c.toml: toml: "},
		{"too deep", "a = [[[[[[[[[1]]]]]]]]]\n", nil, "c.toml:1: nested more than"},
	}
	for _, tt := range tests {
		got, err := ReadOutline("c.toml", []byte(tt.text))
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) || strings.Contains(err.Error(), leakySecret) {
				t.Errorf("%s: error %v, want one starting %q", tt.name, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case !reflect.DeepEqual(got, tt.want):
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
