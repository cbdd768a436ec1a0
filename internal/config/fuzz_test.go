package config

import (
	"os"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fuzzcorpus"
	"github.com/tokenauthd/tokenauthd/replay"
)

// FuzzConfig: any file contents either load into a configuration a
// verifier accepts, or give an error; never a panic or a hang.
func FuzzConfig(f *testing.F) {
	fuzzcorpus.Check(f)
	if b, err := os.ReadFile("../../config.toml.example"); err == nil {
		f.Add(b)
	}
	store := replay.NewMemory(replay.MemoryOptions{Capacity: 1, TTL: time.Second})
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data, Options{})
		if err != nil {
			return
		}
		if len(cfg.Hosts) == 0 {
			t.Fatal("config without hosts accepted")
		}
		for name, h := range cfg.Hosts {
			if len(h.TokenSecrets) == 0 || len(h.TokenSecrets) > 1+maxOld || len(h.OTPSeeds) == 0 || len(h.OTPSeeds) > 1+maxOld {
				t.Fatalf("host %q: %d secrets, %d seeds", name, len(h.TokenSecrets), len(h.OTPSeeds))
			}
		}
		if _, err := NewVerifier(cfg, store); err != nil {
			t.Fatalf("loaded config refused by the verifier: %v", err)
		}
	})
}
