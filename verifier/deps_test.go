package verifier_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoRedisClient: importing verifier or replay links no Redis client;
// only replay/redis does. (go test puts the go command on PATH.)
func TestNoRedisClient(t *testing.T) {
	for _, tc := range []struct {
		pkg       string
		wantRedis bool
	}{
		{"github.com/tokenauthd/tokenauthd/verifier", false},
		{"github.com/tokenauthd/tokenauthd/replay", false},
		{"github.com/tokenauthd/tokenauthd/replay/redis", true}, // the check can fail
	} {
		out, err := exec.Command("go", "list", "-deps", tc.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tc.pkg, err, out)
		}
		redis := strings.Contains(string(out), "github.com/redis/go-redis")
		if redis != tc.wantRedis {
			t.Errorf("go list -deps %s: links go-redis = %v, want %v", tc.pkg, redis, tc.wantRedis)
		}
	}
}
