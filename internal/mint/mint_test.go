package mint

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/replay"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), &cli.Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}, args)
	return code, out.String(), errOut.String()
}

// TestMintJWT: mint -jwt -key signs a JWT the host's configuration
// accepts once, with the claims its [jwt] section names (jid_claim,
// issuer, audience); without a configuration, with the defaults.
func TestMintJWT(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "app-1", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), set, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, section string }{
		{"defaults", ""},
		{"the host's claims", "jid_claim = \"sub\"\nissuer = \"https://app.example\"\naudience = \"xmpp\"\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfgPath := filepath.Join(t.TempDir(), "config.toml")
			body := "[hosts.\"example.org\".jwt]\nkeys_file = \"" + filepath.Join(dir, "jwks.json") + "\"\n" + tt.section
			if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"-jwt", "-key", keyFile, "alice@example.org"}
			if tt.section != "" {
				args = append([]string{"-config", cfgPath}, args...)
			}
			code, out, errOut := run(t, args...)
			if code != 0 || strings.Count(out, ".") != 2 {
				t.Fatalf("exit %d, %q, %q", code, out, errOut)
			}
			cfg, err := setup.Load(cfgPath, config.Options{})
			if err != nil {
				t.Fatal(err)
			}
			v, err := cfg.NewVerifier(replay.NewMemory(replay.MemoryOptions{Capacity: 10, TTL: cfg.Verifier.Params.ReplayTTL()}))
			if err != nil {
				t.Fatal(err)
			}
			tok := strings.TrimSpace(out)
			if r := v.Verify(context.Background(), "alice", "example.org", tok); !r.OK() || r.KeyID != "app-1" {
				t.Errorf("minted JWT: %s (%v), key %q", r.Reason, r.Err, r.KeyID)
			}
			if r := v.Verify(context.Background(), "alice", "example.org", tok); r.OK() {
				t.Error("minted JWT accepted twice")
			}
		})
	}
	// -jwt and -key go together; -nonce is a token's.
	for _, args := range [][]string{
		{"-jwt", "alice@example.org"},
		{"-key", keyFile, "alice@example.org"},
		{"-jwt", "-key", keyFile, "-nonce", "42", "alice@example.org"},
	} {
		if code, out, _ := run(t, args...); code != 2 || out != "" {
			t.Errorf("%q: exit %d, %q; want 2 and nothing", args, code, out)
		}
	}
	// A key anyone may write is refused, as every secret file.
	os.Chmod(keyFile, 0o666)
	if code, out, errOut := run(t, "-jwt", "-key", keyFile, "alice@example.org"); code != 1 || out != "" || strings.Contains(errOut, "PRIVATE") {
		t.Errorf("world-writable key: exit %d, %q, %q", code, out, errOut)
	}
}
