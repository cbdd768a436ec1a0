package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// The nonce-length ambiguity of mod_auth_token's format: a token for
// "1admin" with nonce N signs the same message as one for "admin" with
// nonce N+"1". With the default nonce_digits = 32 the moved digit makes the
// nonce 33 digits long and the token is refused; with nonce_digits = 0 (the
// opt-out) it is accepted, and the configuration is warned about.
func TestNonceDigitsDefaultStopsImpersonation(t *testing.T) {
	at := time.Now()
	forge := func(cfgPath string) string {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		v, err := config.NewVerifier(cfg, replay.NewMemory(replay.MemoryOptions{TTL: time.Minute}))
		if err != nil {
			t.Fatal(err)
		}
		// "1admin" holds a genuine token...
		tok, err := v.Mint("1admin", "example.org", at, strings.Repeat("7", 32))
		if err != nil {
			t.Fatal(err)
		}
		// ...and moves the leading "1" of its name to the end of the nonce.
		digits, sig, _ := strings.Cut(tok, " ")
		return "auth:admin:example.org:" + digits + "1 " + sig
	}
	tests := []struct {
		name    string
		extra   string
		yes     bool
		warning bool
	}{
		{"default", "", false, false},                                 // nonce_digits = 32
		{"explicit 32", "[token]\nnonce_digits = 32\n", false, false}, // same
		{"opt-out", "[token]\nnonce_digits = 0\n", true, true},        // accepted, and warned about
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fixture.RFCConfig(t, tt.extra)
			code, out, errOut := runCmd(t, forge(cfg)+"\n", "-config", cfg, "-protocol", "generic")
			if code != 0 || out != protocol.Reply(protocol.Generic, tt.yes) {
				t.Errorf("forged admin token: exit %d, reply %q, want yes=%v", code, out, tt.yes)
			}
			if got := strings.Contains(errOut, "nonce_digits = 0"); got != tt.warning {
				t.Errorf("start-up warning = %v, want %v; stderr:\n%s", got, tt.warning, errOut)
			}
			_, out, _ = runCmd(t, "", "check-config", "-config", cfg)
			if got := strings.Contains(out, "warning: [token] nonce_digits = 0"); got != tt.warning {
				t.Errorf("check-config warning = %v, want %v; output:\n%s", got, tt.warning, out)
			}
		})
	}
	if verifier.NonceDigits != 32 {
		t.Fatalf("verifier.NonceDigits = %d, want 32 (mod_auth_token's)", verifier.NonceDigits)
	}
}
