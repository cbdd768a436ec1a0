package config

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestReadsOnly: reading the file links none of the libraries, nor
// go-redis, nor the key fetchers: building the verifier and opening stores
// are internal/setup's and internal/daemon's. (go test puts the go command on
// PATH.)
func TestReadsOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/tokenauthd/tokenauthd/internal/config").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	for _, never := range []string{
		"github.com/tokenauthd/tokenauthd/protocol",
		"github.com/tokenauthd/tokenauthd/verifier",
		"github.com/tokenauthd/tokenauthd/replay",
		"github.com/tokenauthd/tokenauthd/replay/redis",
		"github.com/redis/go-redis/v9",
		"github.com/tokenauthd/tokenauthd/internal/jwks",
	} {
		if slices.Contains(deps, never) {
			t.Errorf("internal/config links %s", never)
		}
	}
	if !slices.Contains(deps, "github.com/BurntSushi/toml") {
		t.Errorf("go list -deps lacks the TOML parser: %q", deps) // the check can fail
	}
}
