package daemon

import (
	"slices"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/config"
)

// A reload cannot change the replay store's settings: it warns that they
// take effect at the next restart, refuse_after_start and
// redis_min_replicas among them.
func TestRestartOnlyReplaySettings(t *testing.T) {
	for name, change := range map[string]func(*config.Config){
		"refuse_after_start": func(c *config.Config) { c.RefuseAfterStart = true },
		"redis_min_replicas": func(c *config.Config) { c.Redis.MinReplicas = 1 },
	} {
		old, cfg := &config.Config{Store: "memory"}, &config.Config{Store: "memory"}
		change(cfg)
		if got := restartOnly(old, cfg); !slices.Contains(got, "replay store settings") {
			t.Errorf("%s changed: restartOnly = %v", name, got)
		}
	}
}
