package config

import (
	"os"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fuzzcorpus"
)

// FuzzConfig: any file contents either load into a configuration with a
// host, each with its bounded secrets or a key set, or give an error;
// never a panic or a hang. (internal/setup's FuzzSetup has the verifier
// take what loads.)
func FuzzConfig(f *testing.F) {
	fuzzcorpus.Check(f)
	if b, err := os.ReadFile("../../config.toml.example"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data, Options{})
		if err != nil {
			return
		}
		if len(cfg.Hosts) == 0 {
			t.Fatal("config without hosts accepted")
		}
		for name, h := range cfg.Hosts {
			secrets, seeds := len(h.TokenSecrets), len(h.OTPSeeds)
			if (secrets == 0) != (seeds == 0) || secrets == 0 && h.JWT == nil || secrets > 1+maxOld || seeds > 1+maxOld {
				t.Fatalf("host %q: %d secrets, %d seeds", name, len(h.TokenSecrets), len(h.OTPSeeds))
			}
			if h.JWT != nil && len(h.JWT.KeySet) == 0 {
				t.Fatalf("host %q: an empty key set", name)
			}
		}
	})
}
