package explain

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// jwtSetup writes a configuration with a.example (tokens) and j.example
// (JWTs, one Ed25519 key "k1"), and returns it with JWK private keys: the
// set's key and one the set does not hold.
func jwtSetup(t *testing.T) (cfg string, good, stranger []byte) {
	t.Helper()
	dir := t.TempDir()
	jwk := func(kid string) (pub jose.JSONWebKey, priv []byte) {
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, err = json.Marshal(jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: "EdDSA"})
		if err != nil {
			t.Fatal(err)
		}
		return jose.JSONWebKey{Key: p, KeyID: kid, Use: "sig"}, priv
	}
	pub, good := jwk("k1")
	_, stranger = jwk("k9")
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		t.Fatal(err)
	}
	keys := fixture.WriteFile(t, filepath.Join(dir, "jwks.json"), string(set))
	cfg = fixture.WriteFile(t, filepath.Join(dir, "config.toml"),
		"[daemon]\nsocket = \""+filepath.Join(dir, "none.sock")+"\"\n"+
			fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil)+
			"[hosts.\"j.example\".jwt]\nkeys_file = \""+keys+"\"\n")
	return cfg, good, stranger
}

func mintJWT(t *testing.T, key []byte, user, host string, at time.Time) string {
	t.Helper()
	tok, err := verifier.MintJWT(key, verifier.JWTClaims{User: user, Host: host}, at)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestExplainJWT: each JWT verdict with what to do about it; an accepted
// one names its key.
func TestExplainJWT(t *testing.T) {
	cfg, good, stranger := jwtSetup(t)
	now := time.Unix(1_800_000_000, 0)
	for _, tt := range []struct {
		name, jid, token string
		code             int
		want             []string
	}{
		{"accepted", "alice@j.example", mintJWT(t, good, "alice", "j.example", now), 0,
			[]string{"alice@j.example: accepted (if not already used)", `JWT: signed with key "k1"`}},
		{"expired", "alice@j.example", mintJWT(t, good, "alice", "j.example", now.Add(-10*time.Minute)), 1,
			[]string{"alice@j.example: refused: expired", "mint a JWT just before the login"}},
		{"another account's", "alice@j.example", mintJWT(t, good, "bob", "j.example", now), 1,
			[]string{"alice@j.example: refused: wrong_jid", "minted it for another account"}},
		{"a key not in the set", "alice@j.example", mintJWT(t, stranger, "alice", "j.example", now), 1,
			[]string{"alice@j.example: refused: unknown_key", "publish the application's new key"}},
		{"a host without JWTs", "alice@a.example", mintJWT(t, good, "alice", "a.example", now), 1,
			[]string{"alice@a.example: refused: malformed", "the host accepts no JWT"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := explainWants(t, cfg, now, tt.jid, tt.token, tt.code, tt.want)
			if strings.Contains(out, tt.token) || strings.Contains(out, "one-time password") {
				t.Errorf("the token, or a token's explanation, in:\n%s", out)
			}
		})
	}
}

// TestExplainJWTAsksDaemon: whether a JWT was used is the daemon's to say:
// unused before its login, replayed after it.
func TestExplainJWTAsksDaemon(t *testing.T) {
	cfg, good, _ := jwtSetup(t)
	store := replay.NewMemory(replay.MemoryOptions{Capacity: 100, TTL: 10 * time.Minute})
	sock, ask := startExplainDaemon(t, cfg, store)
	tok := mintJWT(t, good, "alice", "j.example", time.Now())
	sockArg := []string{"-socket", sock}
	if code, out := explainNow(t, cfg, sockArg, "alice@j.example", tok); code != 0 || !strings.Contains(out, "alice@j.example: accepted\n") || !strings.Contains(out, "not used yet") {
		t.Fatalf("before its login: exit %d:\n%s", code, out)
	}
	if r := ask("auth:alice:j.example:" + tok); r != fixture.LineYes {
		t.Fatalf("the login: %q", r)
	}
	if code, out := explainNow(t, cfg, sockArg, "alice@j.example", tok); code != 1 || !strings.Contains(out, "alice@j.example: refused: replayed") {
		t.Errorf("after its login: exit %d:\n%s", code, out)
	}
}
