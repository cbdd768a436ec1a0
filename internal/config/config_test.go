package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secretFile := write("secret", leakySecret+"\n")
	seedFile := write("seed", "jbswy3dpehpk3pxp\r\n")
	emptyFile := write("empty", "\n")
	host := `[hosts."example.org"]
token_secret = "` + leakySecret + `"
otp_seed = "JBSWY3DPEHPK3PXP"
`
	tests := []struct {
		name    string
		text    string
		wantErr []string // all in the error; none means no error
	}{
		// The smallest configuration.
		{"minimal", host, nil},
		// Secrets in files, their trailing newline trimmed.
		{"files", `[hosts."example.org"]
token_secret_file = "` + secretFile + `"
otp_seed_file = "` + seedFile + `"
`, nil},
		// Every option.
		{"everything", "protocol = \"generic\"\n[token]\ndigits = 6\ninterval = 60\ndrift = 2\nnonce_digits = 32\n[replay]\ncapacity = 5000\n" + host + "isuser = false\n", nil},
		// A key that is not ours, at the top.
		{"unknown top key", "protocl = \"auto\"\n" + host, []string{"unknown key", "protocl"}},
		// A key that is not ours, in a host.
		{"unknown host key", host + "tokensecret = \"x\"\n", []string{"unknown key", "tokensecret"}},
		// A key that is not ours, in [token].
		{"unknown token key", "[token]\ndigit = 8\n" + host, []string{"unknown key", "token.digit"}},
		// A host without its token secret.
		{"no token secret", "[hosts.\"example.org\"]\notp_seed = \"JBSWY3DPEHPK3PXP\"\n", []string{`hosts."example.org"`, "token_secret"}},
		// A host without its seed.
		{"no seed", "[hosts.\"example.org\"]\ntoken_secret = \"" + leakySecret + "\"\n", []string{`hosts."example.org"`, "otp_seed"}},
		// Both a value and a file for one secret.
		{"both secret and file", host + "token_secret_file = \"" + secretFile + "\"\n", []string{"token_secret", "token_secret_file"}},
		{"both seed and file", host + "otp_seed_file = \"" + seedFile + "\"\n", []string{"otp_seed", "otp_seed_file"}},
		// A secret file that does not exist.
		{"missing file", "[hosts.\"example.org\"]\ntoken_secret_file = \"" + dir + "/nope\"\notp_seed = \"JBSWY3DPEHPK3PXP\"\n", []string{"token_secret_file", "nope"}},
		// A secret file with only a newline.
		{"empty file", "[hosts.\"example.org\"]\ntoken_secret_file = \"" + emptyFile + "\"\notp_seed = \"JBSWY3DPEHPK3PXP\"\n", []string{"token_secret_file", "empty"}},
		// No host at all.
		{"no host", "protocol = \"auto\"\n", []string{"hosts"}},
		// An unknown protocol.
		{"bad protocol", "protocol = \"xmpp\"\n" + host, []string{"protocol", "xmpp"}},
		// A capacity too small to be safe.
		{"small capacity", "[replay]\ncapacity = 10\n" + host, []string{"replay.capacity"}},
		{"huge capacity", "[replay]\ncapacity = 1073741825\n" + host, []string{"replay.capacity"}},
		// A value of the wrong type.
		{"wrong type", "[token]\ndigits = \"8\"\n" + host, []string{"digits"}},
		// Not TOML: the error gives the line, never the line's text.
		{"syntax", host + "token_secret = " + leakySecret + "\n", []string{":4"}},
	}
	for _, tt := range tests {
		path := write(strings.ReplaceAll(tt.name, " ", "-")+".toml", tt.text)
		loadWants(t, tt.name, path, tt.wantErr, leakySecret)
	}
}

func TestLoadConfigValues(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret"), []byte(leakySecret+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "seed"), []byte("jbswy3dpehpk3pxp====\n"), 0o600)
	p := filepath.Join(dir, "c.toml")
	os.WriteFile(p, []byte(`protocol = "ejabberd"
[token]
nonce_digits = 32
[hosts."a.example"]
token_secret_file = "`+dir+`/secret"
otp_seed_file = "`+dir+`/seed"
isuser = false
[hosts."b.example"]
token_secret = "b"
otp_seed = "GEZDGNBV"
`), 0o600)
	c, err := Load(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Protocol != "ejabberd" || c.Token != (Token{Digits: 8, Interval: 30 * time.Second, Drift: 1, NonceDigits: 32}) || c.Capacity != 1_000_000 {
		t.Errorf("config %+v, want ejabberd and the defaults but nonce_digits 32", c)
	}
	// The seed as written, its line's end trimmed (internal/setup
	// normalises it).
	a := c.Hosts["a.example"]
	if string(a.TokenSecrets[0]) != leakySecret || a.OTPSeeds[0] != "jbswy3dpehpk3pxp====" || a.IsUser {
		t.Errorf("host a: secret %q, seed %q, isuser %v; want the file's, trimmed, false", a.TokenSecrets[0], a.OTPSeeds[0], a.IsUser)
	}
	if b := c.Hosts["b.example"]; !b.IsUser || string(b.TokenSecrets[0]) != "b" {
		t.Errorf("host b: %+v; want isuser true by default", b)
	}
}

// The example configuration shipped with the project parses. (Parsed,
// not loaded: a checkout's modes are its user's umask's.)
func TestExampleConfig(t *testing.T) {
	example, err := os.ReadFile("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("../../config.toml.example", example, Options{}); err != nil {
		t.Fatal(err)
	}
}

func TestConfigPath(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if got := Path("", getenv); got != DefaultPath {
		t.Errorf("Path() = %q, want %q", got, DefaultPath)
	}
	env["TOKENAUTHD_CONFIG"] = "/env/c.toml"
	if got := Path("", getenv); got != "/env/c.toml" {
		t.Errorf("Path() with $TOKENAUTHD_CONFIG = %q", got)
	}
	if got := Path("/flag.toml", getenv); got != "/flag.toml" {
		t.Errorf("Path(flag) = %q", got)
	}
}

// A secret that must never show in an error.
const leakySecret = "Sup3rS3cretValue"

// TestErrorsShort: a file of many unknown keys, or a long value, gives an
// error of bounded length (it reaches check-config's output and the log).
func TestErrorsShort(t *testing.T) {
	var many strings.Builder
	for i := range 20_000 {
		fmt.Fprintf(&many, "k%d = 1\n", i)
	}
	for name, body := range map[string]string{
		"unknown keys": many.String(),
		"long level":   "[log]\nlevel = \"" + strings.Repeat("x", 100_000) + "\"\n",
		"long key":     "\"" + strings.Repeat("k", 100_000) + "\" = 1\n",
	} {
		_, err := Parse("c.toml", []byte(body), Options{})
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if n := len(err.Error()); n > maxError+64 {
			t.Errorf("%s: an error of %d bytes", name, n)
		}
	}
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
	c, err := Load(path, Options{})
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
