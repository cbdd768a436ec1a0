package verifier

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
	"github.com/tokenauthd/tokenauthd/replay"
)

// A JWT accepted once must stay refused as long as any configuration the
// replay store may next serve accepts it. The record of an accepted JWT
// lives the ReplayTTL of the configuration that accepted it (max lifetime
// plus twice its leeway), and the journal keeps that expiry across a
// restart; a restart with a larger leeway accepts the same JWT for that
// much longer: once its record has expired, a second time. (Nodes of one
// Redis with different leeways do the same without a restart.)
func TestAttackJWTReplayAfterLeewayRaised(t *testing.T) {
	k := jwtTestKeys()
	path := filepath.Join(t.TempDir(), "replay.journal")
	c := testclock.New(time.Unix(jwtNow-1000, 0))
	open := func(leeway time.Duration) (*Verifier, func()) {
		t.Helper()
		j := &JWT{KeySet: jwkSet(t, jose.JSONWebKey{Key: k.ed.Public(), KeyID: kidEd}), Algorithms: []string{"EdDSA"},
			JIDClaim: "jid", MaxLifetime: 300 * time.Second, Leeway: leeway}
		p := DefaultParams()
		p.MinReplayTTL = j.ReplayTTL()
		mem := replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: p.ReplayTTL(), Now: c.Now})
		st, _, err := replay.OpenJournal(path, mem, replay.JournalOptions{SyncEvery: true})
		if err != nil {
			t.Fatal(err)
		}
		v, err := New(Config{Params: p, Hosts: map[string]Host{"example.org": {JWT: j, IsUser: true}}, Store: st, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		return v, func() { st.Close() }
	}
	// The daemon runs with leeway 0 (records live 300 s), and accepts a
	// JWT issued now that lives 300 s.
	v, stop := open(0)
	c.Set(time.Unix(jwtNow, 0))
	tok := signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, with(claims("alice", "example.org", jwtNow), "exp", int64(jwtNow+300)))
	if r := v.Verify(context.Background(), "alice", "example.org", tok); !r.OK() {
		t.Fatalf("first use: %s (%v)", r.Reason, r.Err)
	}
	stop()
	// The admin raises the leeway to 300 s and restarts: the JWT is valid
	// until exp + 300 s, its record gone at exp.
	c.Set(time.Unix(jwtNow+301, 0))
	v, stop = open(300 * time.Second)
	defer stop()
	if r := v.Verify(context.Background(), "alice", "example.org", tok); r.OK() {
		t.Errorf("the JWT accepted a second time, 301 s after the first, after a restart that raised the leeway")
	}
}

// The same without a restart: a reload builds a new verifier on the same
// store, allowed when the store's TTL covers the new settings. Max
// lifetime 300 s and leeway 0 become 240 s and 30 s: a JWT without iat
// accepted with exp 300 s ahead is good under the new settings until exp
// + 30 s, and its record must outlive that.
func TestAttackJWTReplayAfterReloadSameTTL(t *testing.T) {
	k := jwtTestKeys()
	c := testclock.New(time.Unix(jwtNow, 0))
	settings := func(maxLifetime, leeway time.Duration) *JWT {
		return &JWT{KeySet: jwkSet(t, jose.JSONWebKey{Key: k.ed.Public(), KeyID: kidEd}), Algorithms: []string{"EdDSA"},
			JIDClaim: "jid", MaxLifetime: maxLifetime, Leeway: leeway}
	}
	before, after := settings(300*time.Second, 0), settings(240*time.Second, 30*time.Second)
	p := DefaultParams()
	p.MinReplayTTL = max(before.ReplayTTL(), after.ReplayTTL())
	st := replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: p.ReplayTTL(), Now: c.Now})
	build := func(j *JWT) *Verifier {
		v, err := New(Config{Params: p, Hosts: map[string]Host{"example.org": {JWT: j, IsUser: true}}, Store: st, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := build(before)
	tok := signJWT(t, jwt.SigningMethodEdDSA, k.ed, kidEd, with(claims("alice", "example.org", jwtNow), "iat", nil, "exp", int64(jwtNow+300)))
	if r := v.Verify(context.Background(), "alice", "example.org", tok); !r.OK() {
		t.Fatalf("first use: %s (%v)", r.Reason, r.Err)
	}
	v = build(after) // SIGHUP: the same Params, so the reload is allowed
	c.Set(time.Unix(jwtNow+301, 0))
	if r := v.Verify(context.Background(), "alice", "example.org", tok); r.OK() {
		t.Errorf("the JWT accepted a second time, 301 s after the first, after a reload that kept the replay TTL")
	}
}

// signRawPayload signs a payload given as JSON text with the Ed25519 key
// of the tests' set (kid ed-2024): claims of any spelling, duplicate
// names included, as an application's JSON library may write them.
func signRawPayload(t testing.TB, payload string) string {
	t.Helper()
	in := b64(`{"alg":"EdDSA","kid":"`+kidEd+`","typ":"JWT"}`) + "." + b64(payload)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(jwtTestKeys().ed, []byte(in)))
}

// Claim names are case-sensitive (RFC 7519 §4, RFC 7515 §4: JSON member
// names compared as strings), and every other JWT library reads them so
// (PyJWT's and ejabberd's dicts, golang-jwt's MapClaims). Go's
// encoding/json matches a struct field's name in any case, so the
// verifier reads the JID from a claim "JID" or "Jid", and exp, iat, jti,
// iss from "EXP", "Iat", "JTI", "ISS"; the last of two spellings wins. An
// application that lets a user add claims of their own (profile fields
// copied into the JWT) and guards the names it sets ("jid", "exp")
// exactly lets that user choose the JID tokenauthd reads: a login as
// another account.
func TestAttackJWTClaimNamesCaseInsensitive(t *testing.T) {
	v, _ := newJWTTest(t, testJWT(t))
	for i, tt := range []struct {
		name, user, payload string
	}{
		{"JID after jid", "admin", `{"jid":"alice@example.org","iat":%d,"exp":%d,"jti":"case-%d","JID":"admin@example.org"}`},
		{"Jid without jid", "admin", `{"Jid":"admin@example.org","iat":%d,"exp":%d,"jti":"case-%d"}`},
		// The application meant a JWT without jti (refused), and one of
		// its users' claims supplies one.
		{"JTI for a missing jti", "alice", `{"jid":"alice@example.org","iat":%d,"exp":%d,"x":"case-%d","JTI":"user-chosen"}`},
	} {
		payload := fmt.Sprintf(tt.payload, jwtNow, jwtNow+60, i)
		r := v.Verify(context.Background(), tt.user, "example.org", signRawPayload(t, payload))
		if r.OK() {
			t.Errorf("%s: %s@example.org accepted with claims %s", tt.name, tt.user, payload)
		}
	}
}

// Claim names the decoder would fold onto the host's claims, escapes and
// Unicode case folding included, are refused; other names, and a payload
// that spells each claim once, exactly, are not.
func TestJWTClaimNamesExact(t *testing.T) {
	v, _ := newJWTTest(t, testJWT(t))
	for i, tt := range []struct {
		extra string
		ok    bool
	}{
		{`"x":"y"`, true},
		{`"nested":{"JID":"admin@example.org","jid":"x"}`, true}, // not a top-level claim
		{`"a":"\"jid\":"`, true},                                 // a value, not a name
		{`"\u004aID":"admin@example.org"`, false},                // JID, escaped
		{`"i\u017fs":"x"`, false},                                // iſs: folds onto iss
		{`"jid":"admin@example.org"`, false},                     // jid twice
		{"\"JTI\" \t:\"x\"", false},
	} {
		payload := fmt.Sprintf(`{"jid":"alice@example.org","iat":%d,"exp":%d,"jti":"exact-%d",%s}`, jwtNow, jwtNow+60, i, tt.extra)
		if r := v.Verify(context.Background(), "alice", "example.org", signRawPayload(t, payload)); r.OK() != tt.ok {
			t.Errorf("%s: %s (%v), want accepted %v", tt.extra, r.Reason, r.Err, tt.ok)
		}
	}
}
