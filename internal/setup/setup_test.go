package setup

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fuzzcorpus"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// A secret that must never show in an error.
const leakySecret = "Sup3rS3cretValue"

// What only the libraries can check is refused here, naming the key and
// never quoting a secret; what the file's reader refuses still is.
func TestLoadErrors(t *testing.T) {
	host := "[hosts.\"example.org\"]\ntoken_secret = \"" + leakySecret + "\"\notp_seed = \"JBSWY3DPEHPK3PXP\"\n"
	tests := []struct {
		name    string
		text    string
		wantErr []string // all in the error; none means no error
	}{
		// The smallest configuration.
		{"minimal", host, nil},
		// A seed that is not base32.
		{"bad seed", "[hosts.\"example.org\"]\ntoken_secret = \"x\"\notp_seed = \"" + leakySecret + "!\"\n", []string{`hosts."example.org".otp_seed`, "base32"}},
		// An old seed that is not base32, or that is the current one
		// written another way.
		{"bad old seed", host + "old_otp_seeds = [\"x!\"]\n", []string{`hosts."example.org".old_otp_seeds[0]: not a base32 seed`}},
		{"old seed repeats", host + "old_otp_seeds = [\"jbswy3dpehpk3pxp==\"]\n", []string{`old_otp_seeds[0] repeats otp_seed`}},
		// A host name that cannot be one.
		{"bad host name", "[hosts.\"a@b\"]\ntoken_secret = \"x\"\notp_seed = \"JBSWY3DPEHPK3PXP\"\n", []string{`hosts."a@b"`}},
		// Token parameters out of range.
		{"bad digits", "[token]\ndigits = 4\n" + host, []string{"[token]", "digits"}},
		{"bad drift", "[token]\ndrift = -1\n" + host, []string{"[token]", "drift"}},
		{"bad nonce digits", "[token]\nnonce_digits = 1000\n" + host, []string{"[token]", "nonce"}},
		// The file's reader's own refusals.
		{"bad protocol", "protocol = \"xmpp\"\n" + host, []string{"protocol", "xmpp"}},
		{"syntax", host + "token_secret = " + leakySecret + "\n", []string{":4"}},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".toml")
		if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
			t.Fatal(err)
		}
		loadWants(t, tt.name, path, tt.wantErr, leakySecret)
	}
}

// A host name as long as the file gives an error of bounded length.
func TestErrorsShort(t *testing.T) {
	body := "[hosts.\"" + strings.Repeat("a@", 100_000) + "\"]\ntoken_secret = \"x\"\notp_seed = \"JBSWY3DPEHPK3PXP\"\n"
	_, err := Parse("c.toml", []byte(body), config.Options{})
	if err == nil {
		t.Fatal("no error")
	}
	if n := len(err.Error()); n > 1024+64 {
		t.Errorf("an error of %d bytes", n)
	}
}

// The file's values become the libraries': the protocol's Mode, the
// parameters, normalised seeds, the secrets in order, isuser.
func TestValues(t *testing.T) {
	c, err := Parse("c.toml", []byte(`protocol = "ejabberd"
[token]
digits = 6
interval = 60
drift = 2
nonce_digits = 0
[hosts."a.example"]
token_secret = "a"
otp_seed = "jbswy3dpehpk3pxp===="
old_token_secrets = ["old"]
old_otp_seeds = ["GEZD GNBV"]
isuser = false
[hosts."b.example"]
token_secret = "b"
otp_seed = "GEZDGNBV"
`), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := c.Verifier.Params
	if c.Mode != protocol.Ejabberd || p.Digits != 6 || p.Interval != time.Minute || p.Drift != 2 || p.NonceDigits != 0 || p.MinReplayTTL != 0 {
		t.Errorf("mode %v, params %+v; want the file's", c.Mode, p)
	}
	a := c.Verifier.Hosts["a.example"]
	if !slices.Equal(a.OTPSeeds, []string{"JBSWY3DPEHPK3PXP", "GEZDGNBV"}) || len(a.TokenSecrets) != 2 ||
		string(a.TokenSecrets[0]) != "a" || string(a.TokenSecrets[1]) != "old" || a.IsUser || a.JWT != nil {
		t.Errorf("host a: %+v; want normalised seeds, the current secret first, isuser false", a)
	}
	if b := c.Verifier.Hosts["b.example"]; !b.IsUser {
		t.Errorf("host b: %+v; want isuser true by default", b)
	}
	if !slices.ContainsFunc(c.Warnings(), func(w string) bool { return strings.Contains(w, "nonce_digits = 0") }) {
		t.Errorf("warnings %q lack the file's", c.Warnings())
	}
	if _, err := c.NewVerifier(nil); err == nil {
		t.Error("NewVerifier(nil): no error")
	}
}

// The example configuration shipped with the project is ready for the
// verifier. (Parsed, not loaded: a checkout's modes are its user's
// umask's.)
func TestExampleConfig(t *testing.T) {
	example, err := os.ReadFile("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("../../config.toml.example", example, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
}

// FuzzSetup: any file contents either give a configuration a verifier
// accepts, or an error; never a panic or a hang.
func FuzzSetup(f *testing.F) {
	fuzzcorpus.Check(f)
	if b, err := os.ReadFile("../../config.toml.example"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data, config.Options{})
		if err != nil {
			return
		}
		if len(cfg.Verifier.Hosts) != len(cfg.Hosts) || len(cfg.Hosts) == 0 {
			t.Fatalf("%d hosts made of %d", len(cfg.Verifier.Hosts), len(cfg.Hosts))
		}
		if err := cfg.Check(); err != nil {
			t.Fatalf("a configuration ready for the verifier refused by it: %v", err)
		}
	})
}

// errorHas reports whether err is an error, and fails t unless its text
// holds every string of want.
func errorHas(t *testing.T, name string, err error, want []string) bool {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one with %q", name, want)
		return false
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q lacks %q", name, err, w)
		}
	}
	return true
}

// loadWants loads the configuration at path and checks the outcome: no
// error if wantErr is nil; else an error that holds every string of
// wantErr, starts with the file's path, holds none of the secrets, and
// comes without a configuration.
func loadWants(t *testing.T, name, path string, wantErr []string, secrets ...string) {
	t.Helper()
	c, err := Load(path, config.Options{})
	if wantErr == nil {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		return
	}
	if !errorHas(t, name, err, wantErr) {
		return
	}
	if !strings.HasPrefix(err.Error(), path) {
		t.Errorf("%s: error %q does not start with the file's path", name, err)
	}
	for _, secret := range secrets {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q holds the secret", name, err)
		}
	}
	if c != nil {
		t.Errorf("%s: a config with the error", name)
	}
}

// TestSeenForPassed: a host's isuser = "seen" and seen_for reach the
// verifier; other hosts have none.
func TestSeenForPassed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	host := "token_secret = \"s\"\notp_seed = \"GEZDGNBVGY3TQOJQ\"\n"
	text := "[hosts.\"a.example\"]\n" + host + "isuser = \"seen\"\nseen_for = 3\n[hosts.\"b.example\"]\n" + host
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := c.Verifier.Hosts["a.example"], c.Verifier.Hosts["b.example"]; a.SeenFor != 3*24*time.Hour || a.IsUser || b.SeenFor != 0 || !b.IsUser {
		t.Errorf("a: seen_for %v isuser %v; b: seen_for %v isuser %v", a.SeenFor, a.IsUser, b.SeenFor, b.IsUser)
	}
}
