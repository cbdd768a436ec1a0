package doctor

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// TestCheckRedisReplicas: with redis_min_replicas, doctor reports a Redis
// master with fewer replicas than it plus one, and a Redis it cannot
// reach; without it, nothing.
func TestCheckRedisReplicas(t *testing.T) {
	rs := fixture.StartRedis(t, 0)
	down := fixture.FreePort(t)
	for _, tc := range []struct {
		name string
		port int
		min  int
		want string // "" for no finding
	}{
		{"min 1, no replica", rs.Port, 1, "Redis master has 0 replica(s) online, redis_min_replicas is 1: every token recorded there is refused now"},
		{"min 0", rs.Port, 0, ""},
		{"unreachable", down, 1, "cannot count Redis's replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := fixture.WriteConfig(t, t.TempDir(), fmt.Sprintf(
				"[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:%d/0\"\nredis_min_replicas = %d\nredis_timeout_ms = 300\n", tc.port, tc.min))
			cfg, err := config.Load(path, config.Options{})
			if err != nil {
				t.Fatal(err)
			}
			d := newDoctor(context.Background(), Options{})
			d.checkRedis(path, cfg)
			switch {
			case tc.want == "" && len(d.findings) > 0:
				t.Fatalf("findings %+v, want none", d.findings)
			case tc.want != "" && (len(d.findings) != 1 || d.findings[0].Severity != Warning || !strings.Contains(d.findings[0].Message, tc.want)):
				t.Fatalf("findings %+v, want one warning saying %q", d.findings, tc.want)
			}
		})
	}
}
