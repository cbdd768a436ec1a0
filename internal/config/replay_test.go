package config

import (
	"os"
	"path/filepath"
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
		c, err := Load(path, Options{})
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
