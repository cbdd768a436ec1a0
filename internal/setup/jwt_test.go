package setup

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// jwkOf returns the public JWK of an Ed25519 key, with kid if not empty.
func jwkOf(pub ed25519.PublicKey, kid string) map[string]any {
	k := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(pub)}
	if kid != "" {
		k["kid"] = kid
	}
	return k
}

// setOf returns the JWK Set of the given keys.
func setOf(keys ...map[string]any) string {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return string(b)
}

// jwtDir holds a test's key files.
type jwtDir struct {
	t   *testing.T
	dir string
}

func (d jwtDir) write(name, text string, mode os.FileMode) string {
	d.t.Helper()
	p := filepath.Join(d.dir, name)
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		d.t.Fatal(err)
	}
	return p
}

// newKey returns a fresh Ed25519 key pair.
func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// privateJWK is the private JWK of an Ed25519 key, for MintJWT.
func privateJWK(priv ed25519.PrivateKey, kid string) []byte {
	k := jwkOf(priv.Public().(ed25519.PublicKey), kid)
	k["d"] = base64.RawURLEncoding.EncodeToString(priv.Seed())
	b, _ := json.Marshal(k)
	return b
}

// Every key of [hosts."h".jwt] is read, with its defaults, and a host may
// have JWTs only, tokens only, or both.
func TestJWTSection(t *testing.T) {
	d := jwtDir{t, t.TempDir()}
	pub, _ := newKey(t)
	keys := d.write("keys.json", setOf(jwkOf(pub, "k1")), 0o600)
	c, err := Parse("c.toml", []byte(`
[hosts."jwt.example"]
[hosts."jwt.example".jwt]
keys_file = "`+keys+`"

[hosts."both.example"]
token_secret = "s"
otp_seed = "JBSWY3DPEHPK3PXP"
old_token_secrets = []
[hosts."both.example".jwt]
keys_file = "`+keys+`"
algorithms = ["EdDSA", "ES256"]
jid_claim = "xmpp"
issuer = "https://app.example"
audience = "xmpp.example"
max_lifetime = 600
leeway = 0

[hosts."tokens.example"]
token_secret = "s"
otp_seed = "JBSWY3DPEHPK3PXP"
`), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	only, both, tokens := c.Verifier.Hosts["jwt.example"], c.Verifier.Hosts["both.example"], c.Verifier.Hosts["tokens.example"]
	want := verifier.JWT{Algorithms: []string{"EdDSA", "ES256", "RS256"}, JIDClaim: "jid", MaxLifetime: 300 * time.Second, Leeway: 30 * time.Second}
	if j := only.JWT; j == nil || !slices.Equal(j.Algorithms, want.Algorithms) || j.JIDClaim != want.JIDClaim ||
		j.MaxLifetime != want.MaxLifetime || j.Leeway != want.Leeway || j.Issuer != "" || j.Audience != "" ||
		len(only.TokenSecrets) != 0 || len(only.OTPSeeds) != 0 || !only.IsUser {
		t.Errorf("JWTs only: %+v, JWT %+v; want the defaults", only, only.JWT)
	}
	if j := both.JWT; j == nil || !slices.Equal(j.Algorithms, []string{"EdDSA", "ES256"}) || j.JIDClaim != "xmpp" ||
		j.Issuer != "https://app.example" || j.Audience != "xmpp.example" || j.MaxLifetime != 600*time.Second || j.Leeway != 0 ||
		len(both.TokenSecrets) != 1 || len(both.OTPSeeds) != 1 {
		t.Errorf("both: %+v, JWT %+v", both, both.JWT)
	}
	if string(only.JWT.KeySet) != setOf(jwkOf(pub, "k1")) {
		t.Errorf("key set %q, want the file's", only.JWT.KeySet)
	}
	if tokens.JWT != nil {
		t.Errorf("tokens only: JWT %+v", tokens.JWT)
	}
	// The store keeps records as long as the longest-lived host's JWTs
	// need: both.example's 600 s, no leeway, plus the largest leeway a
	// later configuration may allow.
	if want := 600*time.Second + verifier.MaxJWTLeeway; c.Verifier.Params.MinReplayTTL != want || c.Verifier.Params.ReplayTTL() != want {
		t.Errorf("MinReplayTTL %v, ReplayTTL %v; want %v", c.Verifier.Params.MinReplayTTL, c.Verifier.Params.ReplayTTL(), want)
	}
	if _, err := c.NewVerifier(replay.NewMemory(replay.MemoryOptions{TTL: c.Verifier.Params.ReplayTTL()})); err != nil {
		t.Errorf("NewVerifier: %v", err)
	}
	// Without JWTs, the tokens' own TTL.
	c, err = Parse("c.toml", []byte("[hosts.\"t\"]\ntoken_secret = \"s\"\notp_seed = \"JBSWY3DPEHPK3PXP\"\n"), config.Options{})
	if err != nil || c.Verifier.Params.MinReplayTTL != 0 || c.Verifier.Params.ReplayTTL() != 2*time.Minute {
		t.Errorf("tokens only: %v, MinReplayTTL %v", err, c.Verifier.Params.MinReplayTTL)
	}
}

// The configuration's verifier accepts a JWT once, and a reload (a new
// Load) reads the key set again: a key dropped from the file is refused.
func TestJWTConfigVerifier(t *testing.T) {
	d := jwtDir{t, t.TempDir()}
	oldPub, oldPriv := newKey(t)
	newPub, newPriv := newKey(t)
	keys := d.write("keys.json", setOf(jwkOf(oldPub, "2024"), jwkOf(newPub, "2025")), 0o600)
	cfg := d.write("c.toml", `[hosts."example.org".jwt]
keys_file = "`+keys+`"
`, 0o600)
	ctx := context.Background()
	load := func() *verifier.Verifier {
		c, err := Load(cfg, config.Options{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.NewVerifier(replay.NewMemory(replay.MemoryOptions{TTL: c.Verifier.Params.ReplayTTL()}))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	mint := func(priv ed25519.PrivateKey, kid string) string {
		tok, err := verifier.MintJWT(privateJWK(priv, kid), verifier.JWTClaims{User: "alice", Host: "example.org"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	v := load()
	oldTok, newTok := mint(oldPriv, "2024"), mint(newPriv, "2025")
	for _, tok := range []string{oldTok, newTok} {
		if r := v.Verify(ctx, "alice", "example.org", tok); !r.OK() {
			t.Errorf("before the reload: %s (%v)", r.Reason, r.Err)
		}
		if r := v.Verify(ctx, "alice", "example.org", tok); r.Reason != verifier.Replayed {
			t.Errorf("again: %s", r.Reason)
		}
	}
	d.write("keys.json", setOf(jwkOf(newPub, "2025")), 0o600)
	v = load()
	if r := v.Verify(ctx, "alice", "example.org", mint(oldPriv, "2024")); r.Reason != verifier.UnknownKey {
		t.Errorf("the dropped key after the reload: %s, want unknown_key", r.Reason)
	}
	if r := v.Verify(ctx, "alice", "example.org", mint(newPriv, "2025")); !r.OK() {
		t.Errorf("the kept key after the reload: %s", r.Reason)
	}
	// A mod_auth_token token at a host of JWTs only: malformed.
	if r := v.Verify(ctx, "alice", "example.org", "12345678 "+strings.Repeat("A", 43)+"="); r.Reason != verifier.Malformed {
		t.Errorf("a token at a host of JWTs only: %s", r.Reason)
	}
}

// Every wrong jwt section is refused, naming its key, never quoting a
// symmetric key.
func TestJWTSectionErrors(t *testing.T) {
	d := jwtDir{t, t.TempDir()}
	pub, priv := newKey(t)
	good := d.write("good.json", setOf(jwkOf(pub, "k")), 0o600)
	leakyOct := base64.RawURLEncoding.EncodeToString([]byte(leakySecret + leakySecret + leakySecret))
	files := map[string]string{
		"writable":    d.write("writable.json", setOf(jwkOf(pub, "k")), 0o666),
		"not a set":   d.write("notaset.json", `{"kty":"OKP"}`, 0o600),
		"not JSON":    d.write("notjson.json", leakySecret, 0o600),
		"private":     d.write("private.json", `{"keys":[`+string(privateJWK(priv, "k"))+`]}`, 0o600),
		"broken oct":  d.write("oct.json", `{"keys":[{"kty":"oct","kid":"s","k":"`+leakySecret+`!"}]}`, 0o600),
		"short oct":   d.write("short.json", `{"keys":[{"kty":"oct","kid":"s","k":"`+base64.RawURLEncoding.EncodeToString([]byte(leakySecret))+`"}]}`, 0o600),
		"oct, no HS":  d.write("octnohs.json", `{"keys":[{"kty":"oct","kid":"s","k":"`+leakyOct+`"}]}`, 0o600),
		"large":       d.write("large.json", setOf(jwkOf(pub, strings.Repeat("k", 64<<10))), 0o600),
		"two no kids": d.write("nokids.json", setOf(jwkOf(pub, ""), jwkOf(pub, "")), 0o600),
	}
	section := func(lines ...string) string {
		return "[hosts.\"example.org\".jwt]\n" + strings.Join(lines, "\n") + "\n"
	}
	keysFile := func(p string) string { return `keys_file = "` + p + `"` }
	tests := []struct {
		name    string
		text    string
		wantErr []string
	}{
		{"good", section(keysFile(good)), nil},
		{"no keys_file", section(`algorithms = ["EdDSA"]`), []string{`hosts."example.org".jwt.keys_file is missing`}},
		{"missing file", section(keysFile(d.dir + "/nope.json")), []string{`hosts."example.org".jwt.keys_file`, "nope.json"}},
		{"a directory", section(keysFile(d.dir)), []string{`jwt.keys_file`, "not a regular file"}},
		{"writable by others", section(keysFile(files["writable"])), []string{`jwt.keys_file`, "writable by others"}},
		{"too large", section(keysFile(files["large"])), []string{`jwt.keys_file`, "larger than 65536 bytes"}},
		{"not a JWK Set", section(keysFile(files["not a set"])), []string{`hosts."example.org".jwt:`, "not a JWK Set", "notaset.json"}},
		{"not JSON", section(keysFile(files["not JSON"])), []string{"not a JWK Set"}},
		{"a private key", section(keysFile(files["private"])), []string{"is a private key"}},
		{"a broken symmetric key", section(keysFile(files["broken oct"]), `algorithms = ["HS256"]`), []string{"not a valid symmetric JWK"}},
		{"a short symmetric key", section(keysFile(files["short oct"]), `algorithms = ["HS256"]`), []string{"symmetric key of 16 bytes"}},
		{"a symmetric key, HS256 not allowed", section(keysFile(files["oct, no HS"])), []string{"fits none of the JWT algorithms EdDSA, ES256, RS256"}},
		{"keys without kid", section(keysFile(files["two no kids"])), []string{"has no kid"}},
		{"empty algorithms", section(keysFile(good), "algorithms = []"), []string{`hosts."example.org".jwt.algorithms: empty`}},
		{"alg none", section(keysFile(good), `algorithms = ["EdDSA", "none"]`), []string{`"none" is never allowed`}},
		{"unknown alg", section(keysFile(good), `algorithms = ["EdDSA", "HS1"]`), []string{`"HS1" is not one of`}},
		{"no alg for the key", section(keysFile(good), `algorithms = ["RS256"]`), []string{"fits none of the JWT algorithms RS256"}},
		{"algorithms not a list", section(keysFile(good), `algorithms = "EdDSA"`), []string{"algorithms"}},
		{"empty jid_claim", section(keysFile(good), `jid_claim = ""`), []string{`hosts."example.org".jwt.jid_claim: empty`}},
		{"jid_claim exp", section(keysFile(good), `jid_claim = "exp"`), []string{`cannot be "exp"`}},
		{"jid_claim with a quote", section(keysFile(good), `jid_claim = "a\"b"`), []string{"only letters, digits"}},
		{"max_lifetime 0", section(keysFile(good), "max_lifetime = 0"), []string{`hosts."example.org".jwt.max_lifetime: must be 1 to 86400 seconds, not 0`}},
		{"max_lifetime a day and a second", section(keysFile(good), "max_lifetime = 86401"), []string{"max_lifetime", "86401"}},
		{"max_lifetime a string", section(keysFile(good), `max_lifetime = "300"`), []string{"max_lifetime"}},
		{"negative leeway", section(keysFile(good), "leeway = -1"), []string{`hosts."example.org".jwt.leeway: must be 0 to 300 seconds, not -1`}},
		{"long leeway", section(keysFile(good), "leeway = 301"), []string{"leeway", "301"}},
		{"long issuer", section(keysFile(good), `issuer = "`+strings.Repeat("i", 1025)+`"`), []string{"at most 1024 bytes"}},
		{"unknown key", section(keysFile(good), `keysfile = "x"`), []string{"unknown key", "keysfile"}},
		{"a host with nothing", "[hosts.\"example.org\"]\nisuser = true\n", []string{`hosts."example.org"`, "token_secret and otp_seed", `[hosts."example.org".jwt]`}},
		{"a jwt host with half the token keys", "[hosts.\"example.org\"]\notp_seed = \"JBSWY3DPEHPK3PXP\"\n" + section(keysFile(good)), []string{`hosts."example.org"`, "token_secret"}},
		{"a jwt host with old secrets only", "[hosts.\"example.org\"]\nold_token_secrets = [\"x\"]\n" + section(keysFile(good)), []string{"token_secret"}},
	}
	for _, tt := range tests {
		path := d.write(strings.ReplaceAll(tt.name, " ", "-")+".toml", tt.text, 0o600)
		loadWants(t, tt.name, path, tt.wantErr, leakySecret, leakyOct[:16])
	}
}

// A key set with a symmetric key that every user may read is warned
// about; a set of public keys is not.
func TestJWTKeysFileWarning(t *testing.T) {
	d := jwtDir{t, t.TempDir()}
	pub, _ := newKey(t)
	oct := base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	for _, tt := range []struct {
		name, set string
		mode      os.FileMode
		warned    bool
	}{
		{"public, readable by all", setOf(jwkOf(pub, "k")), 0o644, false},
		{"symmetric, readable by all", `{"keys":[{"kty":"oct","kid":"s","k":"` + oct + `"}]}`, 0o644, true},
		{"symmetric, owner only", `{"keys":[{"kty":"oct","kid":"s","k":"` + oct + `"}]}`, 0o600, false},
	} {
		keys := d.write(strings.ReplaceAll(tt.name, " ", "-")+".json", tt.set, tt.mode)
		c, err := Parse("c.toml", []byte("[hosts.\"h\".jwt]\nkeys_file = \""+keys+"\"\nalgorithms = [\"EdDSA\", \"HS256\"]\n"), config.Options{})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		warned := slices.ContainsFunc(c.Warnings(), func(w string) bool {
			return strings.Contains(w, keys) && strings.Contains(w, "symmetric key")
		})
		if warned != tt.warned {
			t.Errorf("%s: warnings %q", tt.name, c.Warnings())
		}
	}
}

// keys_file = "%d/..." is read from systemd's credentials directory.
func TestJWTKeysFileCredential(t *testing.T) {
	d := jwtDir{t, t.TempDir()}
	pub, _ := newKey(t)
	d.write("example.org.jwks", setOf(jwkOf(pub, "k")), 0o600)
	text := []byte("[hosts.\"example.org\".jwt]\nkeys_file = \"%d/example.org.jwks\"\n")
	if _, err := Parse("c.toml", text, config.Options{}); err == nil || !strings.Contains(err.Error(), "CREDENTIALS_DIRECTORY") {
		t.Errorf("without $CREDENTIALS_DIRECTORY: %v", err)
	}
	c, err := Parse("c.toml", text, config.Options{Credentials: d.dir})
	if err != nil || c.Hosts["example.org"].JWT == nil {
		t.Errorf("with $CREDENTIALS_DIRECTORY: %v", err)
	}
}
