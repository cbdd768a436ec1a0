package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLoadConfigReplayLoss: the [replay] keys about stores that may lose
// records.
func TestLoadConfigReplayLoss(t *testing.T) {
	dir := t.TempDir()
	host := "[hosts.\"example.org\"]\ntoken_secret = \"x\"\notp_seed = \"JBSWY3DPEHPK3PXP\"\n"
	redisURL := "store = \"redis\"\nredis_url = \"redis://127.0.0.1:6379/0\"\n"
	for _, tt := range []struct {
		name    string
		text    string
		check   func(*Config) bool // for valid ones
		wantErr []string           // all in the error
	}{
		{"defaults", host, func(c *Config) bool { return c.Redis.MinReplicas == 0 }, nil},
		{"min replicas", "[replay]\n" + redisURL + "redis_min_replicas = 2\n" + host, func(c *Config) bool {
			return c.Redis.MinReplicas == 2
		}, nil},
		{"negative replicas", "[replay]\n" + redisURL + "redis_min_replicas = -1\n" + host, nil, []string{"replay.redis_min_replicas"}},
		{"replicas on memory", "[replay]\nredis_min_replicas = 1\n" + host, nil, []string{"redis_min_replicas", `store = "redis"`}},
		{"refuse after start", "[replay]\nrefuse_after_start = true\n" + host, func(c *Config) bool { return c.RefuseAfterStart }, nil},
		{"refuse after start off", host, func(c *Config) bool { return !c.RefuseAfterStart }, nil},
		{"refuse after start on redis", "[replay]\n" + redisURL + "refuse_after_start = true\n" + host, nil, []string{"replay.refuse_after_start", "memory"}},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".toml")
		os.WriteFile(path, []byte(tt.text), 0o600)
		c, err := loadConfig(path)
		switch {
		case tt.wantErr == nil && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr == nil && !tt.check(c):
			t.Errorf("%s: loaded %+v", tt.name, *c)
		case tt.wantErr != nil && err == nil:
			t.Errorf("%s: no error, want one with %q", tt.name, tt.wantErr)
		case tt.wantErr != nil:
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s: error %q lacks %q", tt.name, err, w)
				}
			}
		}
	}
}

// A reload cannot change the replay store's settings: it warns that they
// take effect at the next restart, refuse_after_start and
// redis_min_replicas among them.
func TestRestartOnlyReplaySettings(t *testing.T) {
	for name, change := range map[string]func(*Config){
		"refuse_after_start": func(c *Config) { c.RefuseAfterStart = true },
		"redis_min_replicas": func(c *Config) { c.Redis.MinReplicas = 1 },
	} {
		old, cfg := &Config{Store: "memory"}, &Config{Store: "memory"}
		change(cfg)
		if got := restartOnly(old, cfg); !slices.Contains(got, "replay store settings") {
			t.Errorf("%s changed: restartOnly = %v", name, got)
		}
	}
}
