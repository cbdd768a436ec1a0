package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/fixture/peers"
)

// oidcSetup is a real OpenID Connect provider (glewlwyd), one daemon that
// fetches its keys by discovery, and a real ejabberd (a pool of relays)
// and Prosody (the module) in front of the daemon, for the host
// localhost.
type oidcSetup struct {
	g        *peers.Glewlwyd
	ejabberd *ejabberdPool
	prosody  *prosodyServer
	tokens   []string // every access token the test had, to look for in the logs
}

// oidcHost is the daemon's host section: discovery with the provider's
// issuer and CA, the user in preferred_username, keys_max_stale as given.
func oidcHost(g *peers.Glewlwyd, maxStale int) string {
	return fmt.Sprintf(`[hosts."localhost".jwt]
discovery = true
issuer = %q
keys_ca_file = %q
keys_max_stale = %d
user_claim = "preferred_username"
algorithms = ["RS256"]
max_lifetime = 3600
`, g.Issuer, g.CAFile, maxStale)
}

// token returns a fresh access token of the plugin for user.
func (s *oidcSetup) token(t *testing.T, plugin, user string) string {
	t.Helper()
	tok := s.g.AccessToken(t, plugin, user, user+"-password")
	s.tokens = append(s.tokens, tok)
	return tok
}

// login logs user in with tok through "ejabberd" or "prosody".
func (s *oidcSetup) login(t *testing.T, server, user, tok string) bool {
	t.Helper()
	port := s.ejabberd.port
	if server == "prosody" {
		port = s.prosody.port
	}
	return xmppLogin(t, user+"@localhost", tok, port, "PLAIN")
}

// logins runs a table of logins, each with the answer it must get.
func (s *oidcSetup) logins(t *testing.T, phase string, steps []oidcLogin) {
	t.Helper()
	for _, l := range steps {
		if got := s.login(t, l.server, l.user, l.tok); got != l.want {
			t.Fatalf("%s: %s through %s as %s: logged in %v, want %v\n%s", phase, l.what, l.server, l.user, got, l.want, s.ejabberd.logs(t))
		}
	}
}

type oidcLogin struct {
	what, server, user, tok string
	want                    bool
}

// setKeysMaxStale rewrites the daemon's keys_max_stale and reloads it.
func (s *oidcSetup) setKeysMaxStale(t *testing.T, from, to int) {
	t.Helper()
	b, err := os.ReadFile(s.ejabberd.daemon.cfg)
	if err != nil {
		t.Fatal(err)
	}
	old, next := fmt.Sprintf("keys_max_stale = %d\n", from), fmt.Sprintf("keys_max_stale = %d\n", to)
	if !strings.Contains(string(b), old) {
		t.Fatalf("no %q in the configuration", old)
	}
	fixture.WriteFile(t, s.ejabberd.daemon.cfg, strings.Replace(string(b), old, next, 1))
	s.ejabberd.daemon.hup(t)
	if !strings.Contains(s.ejabberd.daemon.log(), "configuration reloaded") {
		t.Fatalf("the reload failed:\n%s", s.ejabberd.daemon.log())
	}
}

// TestOIDCProvider: a real provider's access tokens through ejabberd and
// Prosody and one daemon. The daemon starts while the provider is down,
// refuses until its first fetch, then: a token logs in once and never
// twice, on either server; the user claim is compared case-folded; a
// token of another issuer is refused; a key rotation at the provider is
// picked up without a restart; with the provider down, the cached set
// still works, across a reload; past keys_max_stale, every JWT is refused
// as keys_unavailable, counted and explained.
func TestOIDCProvider(t *testing.T) {
	set := peers.Get(t)
	fixture.RequirePeer(t, peers.GlewlwydBin, set.ProsodyBin, fixture.DebianPython, "python:slixmpp")
	s := &oidcSetup{g: peers.NewGlewlwyd(t, t.TempDir(), fixture.FreePort(t))}
	// keys_max_stale 10 s: the set is refreshed every 5 s while the
	// provider is up.
	s.ejabberd = startEjabberdPool(t, oidcHost(s.g, 10), 2)
	d := s.ejabberd.daemon
	fixture.WaitFor(t, "the daemon to say it cannot fetch", func() bool {
		return strings.Contains(d.log(), "cannot fetch JWT keys; the host's JWTs are refused until a fetch succeeds")
	})
	// Before the first fetch: refused, whatever the JWT.
	if r := dialLines(t, d.sock).ask(t, "auth:alice:localhost:eyJhbGciOiJSUzI1NiJ9.eyJ4IjoxfQ.c2ln"); r != "0" {
		t.Fatalf("a JWT before the first fetch: %q", r)
	}
	fixture.WaitFor(t, "keys_unavailable in the log", func() bool { return strings.Contains(d.log(), "reason=keys_unavailable user=alice") })
	s.prosody = startProsody(t, t.TempDir(), d.sock)
	s.g.Run(t)
	for _, u := range []string{"alice", "Carol"} {
		s.g.AddUser(t, u, u+"-password")
	}
	early := s.token(t, "oidc", "alice")
	fixture.WaitFor(t, "the first fetch", func() bool { return strings.Contains(d.log(), "JWT keys fetched") })
	out, _, code := runBinary(t, nil, "check-config", "-config", d.cfg)
	if code != 0 || !strings.Contains(string(out), `note: host "localhost": 1 JWT key(s) fetched from `+s.g.Issuer+"/.well-known/openid-configuration (kids glw-1)") {
		t.Errorf("check-config: exit %d:\n%s", code, out)
	}
	oidcOnce(t, s, early)
	oidcRotation(t, s)
	oidcProviderDown(t, s)
	log := d.log() + readFile(t, s.prosody.log) + readFile(t, s.ejabberd.relayLog)
	for _, tok := range s.tokens {
		if strings.Contains(log, tok[strings.LastIndexByte(tok, '.')+1:]) {
			t.Fatal("an access token's signature appears in the logs")
		}
	}
}

// oidcOnce: each token logs in once, whichever server; the claim is
// case-folded; a token of another issuer (sharing the provider's keys) is
// refused.
func oidcOnce(t *testing.T, s *oidcSetup, early string) {
	keys, kids := s.g.Keys()
	s.g.AddOIDC(t, "other", s.g.URL+"/api/other", keys, kids)
	second, third, carol := s.token(t, "oidc", "alice"), s.token(t, "oidc", "alice"), s.token(t, "oidc", "Carol")
	other := s.token(t, "other", "alice")
	s.logins(t, "once", []oidcLogin{
		{"a token minted before the first fetch", "ejabberd", "alice", early, true},
		{"it again", "ejabberd", "alice", early, false},
		{"it again", "prosody", "alice", early, false},
		{"another token", "prosody", "alice", second, true},
		{"it again", "ejabberd", "alice", second, false},
		{"a token, the JID in capitals", "ejabberd", "ALICE", third, true},
		{"Carol's token (preferred_username Carol)", "prosody", "carol", carol, true},
		{"alice's token as bob", "ejabberd", "bob", s.token(t, "oidc", "alice"), false},
		{"another issuer's token", "ejabberd", "alice", other, false},
		{"another issuer's token", "prosody", "alice", other, false},
	})
	log := s.ejabberd.daemon.log()
	for reason, n := range map[string]int{"replayed": 3, "wrong_issuer": 2, "wrong_jid": 1} {
		if got := strings.Count(log, "reason="+reason+" "); got != n {
			t.Errorf("the daemon logged %d %s refusals, want %d:\n%s", got, reason, n, log)
		}
	}
}

// oidcRotation: the provider signs with a new key (a new kid); the
// daemon's refresh picks it up, no restart.
func oidcRotation(t *testing.T, s *oidcSetup) {
	d := s.ejabberd.daemon
	s.g.Rotate(t, "glw-2")
	rotated := s.token(t, "oidc", "alice")
	fixture.WaitFor(t, "the rotated set", func() bool { return strings.Contains(d.log(), "kids=glw-2,glw-1") })
	s.logins(t, "rotation", []oidcLogin{
		{"a token of the new key", "ejabberd", "alice", rotated, true},
		{"it again", "prosody", "alice", rotated, false},
	})
}

// oidcProviderDown: with the provider stopped, the cached set serves,
// also after a reload that keeps the URL; once keys_max_stale has passed,
// every JWT is refused as keys_unavailable, counted, and explained.
func oidcProviderDown(t *testing.T, s *oidcSetup) {
	d := s.ejabberd.daemon
	s.setKeysMaxStale(t, 10, 86400)
	cached := []string{s.token(t, "oidc", "alice"), s.token(t, "oidc", "alice")}
	stale := []string{s.token(t, "oidc", "alice"), s.token(t, "oidc", "alice")}
	s.g.Stop(t)
	s.logins(t, "provider down", []oidcLogin{
		{"a token, the provider down", "ejabberd", "alice", cached[0], true},
		{"a token, the provider down", "prosody", "alice", cached[1], true},
	})
	s.setKeysMaxStale(t, 86400, 10)
	conn := dialLines(t, d.sock)
	fixture.WaitFor(t, "keys_max_stale to pass", func() bool {
		conn.ask(t, "auth:nobody:localhost:"+stale[0]) // wrong_jid, then keys_unavailable: never accepted
		return strings.Contains(d.log(), "reason=keys_unavailable user=nobody")
	})
	s.logins(t, "past keys_max_stale", []oidcLogin{
		{"a token, the set stale", "ejabberd", "alice", stale[0], false},
		{"a token, the set stale", "prosody", "alice", stale[1], false},
	})
	if n := strings.Count(d.log(), "reason=keys_unavailable user=alice"); n != 3 { // and the one before the first fetch
		t.Errorf("the daemon logged %d keys_unavailable refusals of alice, want 3:\n%s", n, d.log())
	}
	m := scrape(t, d.metrics)
	if n := m[`tokenauthd_requests_total{command="auth",reason="keys_unavailable",result="no"}`]; n < 3 {
		t.Errorf("keys_unavailable counted %v times, want at least 3", n)
	}
	out, _, code := runBinary(t, nil, "explain", "-config", d.cfg, "-socket", filepath.Join(t.TempDir(), "none"), "alice@localhost", stale[0])
	if code != 1 || !strings.Contains(string(out), "alice@localhost: refused: keys_unavailable") {
		t.Errorf("explain: exit %d:\n%s", code, out)
	}
}
