package setup

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/jwks"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// Keys fetched from a provider: keys_url (HTTPS, plain HTTP to loopback
// only) or discovery with issuer, keys_ca_file, keys_max_stale,
// user_claim; every wrong combination refused, naming its key.
func TestJWTFetchedKeys(t *testing.T) {
	d := jwtDir{t, t.TempDir()}
	pub, _ := newKey(t)
	good := d.write("good.json", setOf(jwkOf(pub, "k")), 0o600)
	section := func(lines ...string) string {
		return "[hosts.\"example.org\".jwt]\n" + strings.Join(lines, "\n") + "\n"
	}
	const url, issuer = `keys_url = "https://idp.example/jwks"`, `issuer = "https://idp.example/realms/x/"`
	tests := []struct {
		name    string
		text    string
		want    *jwks.Spec // nil: an error
		wantErr []string
	}{
		{"keys_url", section(url), &jwks.Spec{URL: "https://idp.example/jwks", MaxStale: 24 * time.Hour}, nil},
		{"keys_url on loopback", section(`keys_url = "http://127.0.0.1:8080/jwks"`, "keys_max_stale = 600", `keys_ca_file = "/etc/ssl/idp.pem"`),
			&jwks.Spec{URL: "http://127.0.0.1:8080/jwks", MaxStale: 10 * time.Minute, CAFile: "/etc/ssl/idp.pem"}, nil},
		{"discovery", section("discovery = true", issuer),
			&jwks.Spec{Discovery: true, Issuer: "https://idp.example/realms/x/", MaxStale: 24 * time.Hour}, nil},
		{"keys_url over plain HTTP", section(`keys_url = "http://idp.example/jwks"`), nil,
			[]string{`hosts."example.org".jwt.keys_url: http:// to idp.example: plain HTTP only to a loopback address`}},
		{"issuer over plain HTTP", section("discovery = true", `issuer = "http://10.1.2.3/realm"`), nil,
			[]string{`hosts."example.org".jwt.issuer: with discovery, http:// to 10.1.2.3`}},
		// OpenID Connect Discovery §2: an issuer has no query or fragment.
		{"issuer with a query", section("discovery = true", `issuer = "https://idp.example/realm?v=2"`), nil,
			[]string{`hosts."example.org".jwt.issuer: with discovery`, "query"}},
		{"keys_url not a URL", section(`keys_url = "idp.example/jwks"`), nil, []string{"keys_url", "scheme"}},
		{"keys_file and keys_url", section(url, `keys_file = "`+good+`"`), nil, []string{"alternatives: set one"}},
		{"keys_url and discovery", section(url, "discovery = true", issuer), nil, []string{"alternatives: set one"}},
		{"discovery without issuer", section("discovery = true"), nil, []string{"discovery = true needs issuer"}},
		{"no keys at all", section(issuer), nil, []string{"keys_file is missing", "keys_url"}},
		{"keys_ca_file relative", section(url, `keys_ca_file = "ca.pem"`), nil, []string{"keys_ca_file", "not an absolute path"}},
		{"keys_max_stale too small", section(url, "keys_max_stale = 9"), nil, []string{"keys_max_stale: must be 10 to 2592000 seconds, not 9"}},
		{"keys_max_stale too large", section(url, "keys_max_stale = 2592001"), nil, []string{"keys_max_stale"}},
		{"keys_max_stale with keys_file", section(`keys_file = "`+good+`"`, "keys_max_stale = 60"), nil, []string{"not keys_file"}},
		{"user_claim and jid_claim", section(url, `user_claim = "preferred_username"`, `jid_claim = "jid"`), nil, []string{"jid_claim and user_claim: set one"}},
		{"user_claim empty", section(url, `user_claim = ""`), nil, []string{"user_claim: empty"}},
		{"user_claim registered", section(url, `user_claim = "aud"`), nil, []string{`cannot be "aud"`}},
	}
	for _, tt := range tests {
		path := d.write(strings.ReplaceAll(tt.name, " ", "-")+".toml", tt.text, 0o600)
		if tt.want == nil {
			loadWants(t, tt.name, path, tt.wantErr)
			continue
		}
		c, err := Load(path, config.Options{})
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := c.FetchedKeys["example.org"]; got != *tt.want || c.Hosts["example.org"].JWT.KeySet != nil {
			t.Errorf("%s: %+v, want %+v", tt.name, got, *tt.want)
		}
	}
}

// A host whose keys are fetched, and user_claim: commands that fetch
// nothing (mint, bench) still make a verifier, which refuses the host's
// JWTs as keys_unavailable.
func TestJWTFetchedKeysUnfetched(t *testing.T) {
	d := jwtDir{t, t.TempDir()}
	path := d.write("c.toml", `[hosts."example.org".jwt]
keys_url = "https://idp.example/jwks"
user_claim = "preferred_username"
algorithms = ["RS256"]
`, 0o600)
	c, err := Load(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if j := c.Verifier.Hosts["example.org"].JWT; j.UserClaim != "preferred_username" || j.Keys != nil {
		t.Errorf("user claim %q, keys %v", j.UserClaim, j.Keys)
	}
	v, err := c.NewVerifier(replay.NewMemory(replay.MemoryOptions{Capacity: 1, TTL: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Verifier.Hosts["example.org"].JWT.Keys != nil {
		t.Error("NewVerifier changed the configuration's settings")
	}
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJ4IjoxfQ.c2ln"
	r := v.Verify(context.Background(), "alice", "example.org", jwt)
	if r.Reason != verifier.KeysUnavailable {
		t.Errorf("a JWT: %s (%v), want keys_unavailable", r.Reason, r.Err)
	}
	o, err := c.NewOffline()
	if err != nil {
		t.Fatal(err)
	}
	if r := o.Check(context.Background(), "alice", "example.org", jwt); r.Reason != verifier.KeysUnavailable {
		t.Errorf("a JWT, offline: %s (%v), want keys_unavailable", r.Reason, r.Err)
	}
}

// TestSharedUserClaimWarned: hosts that read the user from user_claim of
// JWTs signed by one key source take each other's JWTs (the host is not in
// the token) unless each names an audience of its own: check-config warns.
func TestSharedUserClaimWarned(t *testing.T) {
	d := jwtDir{t, t.TempDir()}
	const url = `keys_url = "https://idp.example/jwks"`
	section := func(host string, lines ...string) string {
		return "[hosts.\"" + host + "\".jwt]\n" + strings.Join(lines, "\n") + "\n"
	}
	claim := `user_claim = "preferred_username"`
	tests := []struct {
		name string
		text string
		warn bool
	}{
		{"one host", section("a.example", url, claim), false},
		{"two hosts, no audience", section("a.example", url, claim) + section("b.example", url, claim), true},
		{"two hosts, one audience", section("a.example", url, claim, `audience = "a"`) + section("b.example", url, claim), true},
		{"two hosts, one audience for both", section("a.example", url, claim, `audience = "x"`) + section("b.example", url, claim, `audience = "x"`), true},
		{"two hosts, their own audiences", section("a.example", url, claim, `audience = "a"`) + section("b.example", url, claim, `audience = "b"`), false},
		{"two hosts, JIDs", section("a.example", url) + section("b.example", url), false},
		{"two hosts, two providers", section("a.example", url, claim) + section("b.example", `keys_url = "https://other.example/jwks"`, claim), false},
	}
	for _, tt := range tests {
		path := d.write(strings.ReplaceAll(tt.name, " ", "-")+".toml", tt.text, 0o600)
		c, err := Load(path, config.Options{})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		warned := false
		for _, w := range c.Warnings() {
			warned = warned || strings.Contains(w, "user_claim")
		}
		if warned != tt.warn {
			t.Errorf("%s: warned %v, want %v: %q", tt.name, warned, tt.warn, c.Warnings())
		}
	}
}
