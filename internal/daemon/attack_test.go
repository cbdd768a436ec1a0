package daemon

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// check-config -user NAME must not say ok for a setup serve, run as NAME,
// cannot start with: a configuration file, a secret file or a JWT key set
// NAME may not read. (The package's permission recipe gives the
// configuration to root:tokenauthd 0640; a file left root's 0600 makes
// serve exit with "permission denied", and every login is refused.)
// Files named "%d/..." are systemd credentials, which systemd hands to
// the service whatever their modes on disk: those are not in question.
func TestAttackCheckConfigUserCannotRead(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // reachable by nobody
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := write("keys.json", fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":%q}]}`, base64.RawURLEncoding.EncodeToString(pub)), 0o600)
	secret := write("token_secret", fixture.SecretA+"\n", 0o600)
	daemon := fmt.Sprintf("[daemon]\nsocket = %q\n", filepath.Join(dir, "s.sock"))
	if err := os.Chmod(dir, 0o777); err != nil { // nobody may make the socket
		t.Fatal(err)
	}
	tests := []struct {
		name, config string
		mode         os.FileMode
		unreadable   string
	}{
		{"configuration root's only", daemon + fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil), 0o600, "config"},
		{"token secret file", daemon + fmt.Sprintf("[hosts.\"a.example\"]\ntoken_secret_file = %q\notp_seed = %q\n", secret, fixture.SeedA), 0o644, secret},
		{"JWT key set", daemon + fmt.Sprintf("[hosts.\"a.example\".jwt]\nkeys_file = %q\n", keys), 0o644, keys},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := write(fmt.Sprintf("config%d.toml", i), tt.config, tt.mode)
			if code, out, _ := runCmd(t, "", "check-config", "-config", cfg); code != 0 {
				t.Fatalf("check-config as the file's owner: exit %d:\n%s", code, out)
			}
			code, out, _ := runCmd(t, "", "check-config", "-config", cfg, "-user", "nobody")
			if code == 0 || strings.Contains(out, ": ok:") {
				t.Errorf("user nobody may not read %s, and check-config -user nobody says (exit %d):\n%s", tt.unreadable, code, out)
			}
		})
	}
}
