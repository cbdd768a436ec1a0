package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/config"
)

// A TOML syntax error names the file and the line, never a part of the
// value: the parser's own messages quote it, and the value may be a secret.
// Checked where the error goes: loadConfig (serve, the helper), the relay's
// settings, and check-config's output.
func TestConfigSyntaxErrorHidesValue(t *testing.T) {
	dir := t.TempDir()
	values := []struct{ text, secret string }{
		{"truesecret", "truese"},
		{"12_34__5678", "12_3"},
		{"[Sup3rS3cret]", "Sup"},
		{`"Sup3r` + "\n", "Sup"},
		{"0xZZSecretZZ", "0xZ"},
		{"Sup3r S3cret", "Sup"},
		{"1979-05-27TSup3r", "1979"},
	}
	for i, v := range values {
		text := "[hosts.\"example.org\"]\notp_seed = \"JBSWY3DPEHPK3PXP\"\ntoken_secret = " + v.text + "\n"
		p := filepath.Join(dir, fmt.Sprintf("c%d.toml", i))
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := config.Load(p)
		if err == nil {
			t.Errorf("config.Load(token_secret = %q): no error", v.text)
			continue
		}
		if want := p + ":3: syntax error"; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("config.Load(token_secret = %q) = %q, want it to start with %q", v.text, err, want)
		}
		_, rerr := config.LoadRelay(p, true)
		if rerr == nil || !strings.HasPrefix(rerr.Error(), p+":3: syntax error") {
			t.Errorf("config.LoadRelay(token_secret = %q) = %v, want a syntax error at line 3", v.text, rerr)
		}
		code, stdout, stderr := runCmd(t, "", "check-config", "-config", p)
		if code == 0 {
			t.Errorf("check-config(token_secret = %q) passed", v.text)
		}
		for _, out := range []string{err.Error(), fmt.Sprint(rerr), stdout, stderr} {
			if strings.Contains(out, v.secret) {
				t.Errorf("token_secret = %q: output %q holds part of the value", v.text, out)
			}
		}
	}
}
