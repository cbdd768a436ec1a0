package daemon

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// TestConfigRotationLogMetrics: the options of rotation, logs and metrics
// are validated, and errors name the key without quoting a secret.
func TestConfigRotationLogMetrics(t *testing.T) {
	host := func(extra string) string {
		return "[hosts.\"a.example\"]\ntoken_secret = \"cur-secret-xyz\"\notp_seed = \"" + fixture.SeedA + "\"\n" + extra
	}
	tests := []struct {
		name, body string
		err        string // "" = valid
	}{
		{"old lists", host("old_token_secrets = [\"old-1\", \"old-2\"]\nold_otp_seeds = [\"" + fixture.SeedB + "\"]\n"), ""},
		{"empty old lists", host("old_token_secrets = []\nold_otp_seeds = []\n"), ""},
		{"empty old secret", host("old_token_secrets = [\"\"]\n"), `old_token_secrets[0] is empty`},
		{"old secret repeats current", host("old_token_secrets = [\"cur-secret-xyz\"]\n"), `old_token_secrets[0] repeats token_secret`},
		{"old secret twice", host("old_token_secrets = [\"o\", \"o\"]\n"), `old_token_secrets[1] repeats`},
		{"too many old secrets", host("old_token_secrets = [\"1\", \"2\", \"3\", \"4\", \"5\"]\n"), `at most 4`},
		{"old seed not base32", host("old_otp_seeds = [\"not base32!\"]\n"), `old_otp_seeds[0]: not a base32 seed`},
		{"old seed repeats current", host("old_otp_seeds = [\"" + strings.ToLower(fixture.SeedA) + "\"]\n"), `old_otp_seeds[0] repeats otp_seed`},
		{"old secrets not a list", host("old_token_secrets = \"old\"\n"), `old_token_secrets`},
		{"log json debug", "[log]\nformat = \"json\"\nlevel = \"debug\"\n" + host(""), ""},
		{"log level warn", "[log]\nlevel = \"WARN\"\n" + host(""), ""},
		{"log format bad", "[log]\nformat = \"xml\"\n" + host(""), `log.format: "xml" is not text or json`},
		{"log level bad", "[log]\nlevel = \"loud\"\n" + host(""), `log.level: "loud"`},
		{"log unknown key", "[log]\nfile = \"/var/log/x\"\n" + host(""), `unknown key log.file`},
		{"metrics listen", "[metrics]\nlisten = \"127.0.0.1:9464\"\n" + host(""), ""},
		{"metrics listen bad", "[metrics]\nlisten = \"9464\"\n" + host(""), `metrics.listen: "9464" is not host:port`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("c.toml", []byte(tc.body))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err != "" && err == nil:
				t.Fatalf("accepted, want error %q", tc.err)
			case err != nil:
				if !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %q, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "cur-secret-xyz") {
					t.Fatalf("error quotes the secret: %v", err)
				}
			}
			if err == nil && tc.name == "old lists" {
				h := cfg.Hosts["a.example"]
				if len(h.TokenSecrets) != 3 || string(h.TokenSecrets[0]) != "cur-secret-xyz" || len(h.OTPSeeds) != 2 || h.OTPSeeds[0] != fixture.SeedA {
					t.Fatalf("host %+v: current first, then the old ones", h)
				}
			}
			if err == nil && tc.name == "log json debug" && (!cfg.LogJSON || cfg.LogLevel != slog.LevelDebug) {
				t.Fatalf("log settings not applied: %+v", cfg)
			}
		})
	}
}

// TestCheckConfigNotesOldSecrets: check-config reminds the admin of old
// secrets still accepted.
func TestCheckConfigNotesOldSecrets(t *testing.T) {
	path := fixture.WriteFile(t, fixture.ConfigPath(t), fixture.HostBlock("a.example", fixture.SecretB, fixture.SeedB, []string{fixture.SecretA}, nil)+
		fixture.HostBlock("b.example", fixture.SecretH, fixture.SeedH, nil, nil))
	var out, errb fixture.Buffer
	if code := RunCheckConfig(context.Background(), &cli.Env{Stdout: &out, Stderr: &errb}, []string{"-config", path}); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), `host "a.example" still accepts 1 old token secret(s) and 0 old otp seed(s)`) ||
		strings.Contains(out.String(), `host "b.example" still`) {
		t.Fatalf("check-config output:\n%s", out.String())
	}
}
