package verifier

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
	"github.com/tokenauthd/tokenauthd/replay"
)

// untouchedStore fails the test when the verifier asks it anything.
type untouchedStore struct{ t testing.TB }

func (s untouchedStore) Record(context.Context, replay.Key) (bool, error) {
	s.t.Error("Record called")
	return true, nil
}

func (s untouchedStore) Seen(context.Context, replay.Key) (bool, error) {
	s.t.Error("Seen called")
	return false, nil
}

func (s untouchedStore) Len() int     { return 0 }
func (s untouchedStore) Close() error { return nil }

func (s untouchedStore) ForgottenAt() time.Time {
	s.t.Error("ForgottenAt called")
	return time.Time{}
}

// offlineConfig is a token host, a token and JWT host and a JWT-only host
// on the clock c.
func offlineConfig(t testing.TB, c *testclock.Clock) Config {
	j := testJWT(t)
	only := &JWT{KeySet: jwkSet(t, jose.JSONWebKey{Key: jwtTestKeys().ed.Public()}),
		Algorithms: []string{"EdDSA"}, JIDClaim: "jid", MaxLifetime: time.Minute}
	p := DefaultParams()
	p.MinReplayTTL = max(j.ReplayTTL(), only.ReplayTTL())
	return Config{
		Params: p,
		Hosts: map[string]Host{
			"example.org": {TokenSecrets: [][]byte{[]byte(secretA)}, OTPSeeds: []string{rfcSeed}, IsUser: true, JWT: j},
			"example.net": {TokenSecrets: [][]byte{[]byte(secretB)}, OTPSeeds: []string{seedB}},
			"jwt.example": {JWT: only, IsUser: true},
		},
		Now: c.Now,
	}
}

// The offline verifier gives every verdict a verifier on an empty store
// gives (Check, Explain), mints the same tokens and answers isuser alike,
// and never asks the store its configuration holds: a token it checks
// twice is accepted twice, as nothing is recorded.
func TestOfflineAgreesWithVerifier(t *testing.T) {
	c := testclock.New(time.Unix(jwtNow, 0))
	oc := offlineConfig(t, c)
	oc.Store = untouchedStore{t}
	o, err := NewOffline(oc)
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() *Verifier {
		vc := offlineConfig(t, c)
		vc.Store = replay.NewMemory(replay.MemoryOptions{Capacity: 100, TTL: vc.Params.ReplayTTL(), Now: c.Now})
		v, err := New(vc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	now := time.Unix(jwtNow, 0)
	tok, err := o.Mint("alice", "example.org", now, nonce32)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := fresh().Mint("alice", "example.org", now, nonce32); tok != want {
		t.Fatalf("Offline.Mint = %q, Verifier.Mint = %q", tok, want)
	}
	old, _ := o.Mint("alice", "example.org", now.Add(-5*time.Minute), "1")
	ed := jwtTestKeys().ed
	for _, tt := range []struct {
		name, user, host, password string
		want                       Reason
	}{
		{"a fresh token", "alice", "example.org", tok, Accepted},
		{"another user's token", "bob", "example.org", tok, BadSignature},
		{"another host's token", "alice", "example.net", tok, OTPOutOfWindow},
		{"a five-minute-old token", "alice", "example.org", old, OTPOutOfWindow},
		{"an unknown host", "alice", "example.com", tok, UnknownHost},
		{"not a token", "alice", "example.org", "hunter2", Malformed},
		{"a bad user name", "a b", "example.org", tok, Malformed},
		{"a JWT", "alice", "jwt.example", signJWT(t, jwt.SigningMethodEdDSA, ed, "", claims("alice", "jwt.example", jwtNow)), Accepted},
		{"a JWT for another user", "bob", "jwt.example", signJWT(t, jwt.SigningMethodEdDSA, ed, "", claims("alice", "jwt.example", jwtNow)), WrongJID},
		{"an expired JWT", "alice", "jwt.example", signJWT(t, jwt.SigningMethodEdDSA, ed, "", claims("alice", "jwt.example", jwtNow-600)), Expired},
	} {
		ctx := context.Background()
		v := fresh()
		want, wantEx := v.Check(ctx, tt.user, tt.host, tt.password), v.Explain(ctx, tt.user, tt.host, tt.password)
		for i := range 2 { // nothing recorded: the same verdict again
			got, gotEx := o.Check(ctx, tt.user, tt.host, tt.password), o.Explain(ctx, tt.user, tt.host, tt.password)
			if got.Reason != tt.want || got.Reason != want.Reason || got.Offset != want.Offset || got.JWT != want.JWT {
				t.Errorf("%s #%d: Offline.Check = %+v, Verifier.Check = %+v, want %s", tt.name, i, got, want, tt.want)
			}
			if gotEx.Reason != wantEx.Reason || gotEx.Offset != wantEx.Offset || gotEx.Far != wantEx.Far || gotEx.Seed != wantEx.Seed {
				t.Errorf("%s #%d: Offline.Explain = %+v, Verifier.Explain = %+v", tt.name, i, gotEx, wantEx)
			}
		}
		if got, want := o.IsUser(tt.user, tt.host), v.IsUser(tt.user, tt.host); got != want {
			t.Errorf("%s: Offline.IsUser = %v, Verifier.IsUser = %v", tt.name, got, want)
		}
	}
	if o.Params() != oc.Params {
		t.Errorf("Params() = %+v, want %+v", o.Params(), oc.Params)
	}
}

// NewOffline refuses every configuration New refuses but for its store,
// with New's error; with no store it builds what New would.
func TestNewOfflineErrors(t *testing.T) {
	st := replay.NewMemory(replay.MemoryOptions{Capacity: 10, TTL: time.Minute})
	good := Host{TokenSecrets: [][]byte{[]byte("k")}, OTPSeeds: []string{rfcSeed}}
	longJWT := &JWT{KeySet: jwkSet(t, jose.JSONWebKey{Key: jwtTestKeys().ed.Public()}),
		Algorithms: []string{"EdDSA"}, JIDClaim: "jid", MaxLifetime: time.Hour}
	for _, tt := range []struct {
		name string
		c    Config
	}{
		{"params", Config{Params: Params{}, Hosts: map[string]Host{"h": good}}},
		{"bad host", Config{Params: DefaultParams(), Hosts: map[string]Host{"a@b": good}}},
		{"empty host", Config{Params: DefaultParams(), Hosts: map[string]Host{"": good}}},
		{"no secret", Config{Params: DefaultParams(), Hosts: map[string]Host{"h": {OTPSeeds: []string{rfcSeed}}}}},
		{"empty secret", Config{Params: DefaultParams(), Hosts: map[string]Host{"h": {TokenSecrets: [][]byte{{}}, OTPSeeds: []string{rfcSeed}}}}},
		{"bad seed", Config{Params: DefaultParams(), Hosts: map[string]Host{"h": {TokenSecrets: [][]byte{[]byte("k")}, OTPSeeds: []string{"not base32!"}}}}},
		{"JWTs outliving the replay TTL", Config{Params: DefaultParams(), Hosts: map[string]Host{"h": {JWT: longJWT}}}},
		{"a JWT set without keys", Config{Params: DefaultParams(), Hosts: map[string]Host{"h": {JWT: &JWT{KeySet: []byte(`{"keys":[]}`), Algorithms: []string{"EdDSA"}, MaxLifetime: time.Minute}}}}},
	} {
		_, oerr := NewOffline(tt.c)
		tt.c.Store = st
		_, err := New(tt.c)
		var e *Error
		switch {
		case err == nil:
			t.Errorf("%s: New = nil error: not a bad configuration", tt.name)
		case oerr == nil:
			t.Errorf("%s: NewOffline = nil error, New: %v", tt.name, err)
		case oerr.Error() != err.Error() || !errors.As(oerr, &e):
			t.Errorf("%s: NewOffline: %v, want New's %v as an *Error", tt.name, oerr, err)
		}
	}
	if _, err := NewOffline(Config{Params: DefaultParams(), Hosts: map[string]Host{"h": good}}); err != nil {
		t.Errorf("NewOffline with no store: %v", err)
	}
}
