package daemon

import (
	"os"
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// TestCheckNestingRealConfigs: the example and every test configuration
// written by this package's tests pass the scan.
func TestCheckNestingRealConfigs(t *testing.T) {
	example, err := os.ReadFile("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"config.toml.example": example,
		"test config":         []byte(readFileT(t, fixture.WriteConfig(t, t.TempDir(), "[log]\nlevel = \"debug\"\n"))),
		"rfc config":          []byte(readFileT(t, fixture.RFCConfig(t, "[replay]\nstore = \"redis\"\nredis_addrs = [\"127.0.0.1:1\"]\n"))),
	} {
		if err := config.CheckNesting(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func readFileT(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConfigFileOwner: a file owned by another user than root and the
// running one is refused (run as root: chown needs it).
func TestConfigFileOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	p := fixture.WriteConfig(t, t.TempDir(), "")
	if err := os.Chown(p, 65534, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(p); err == nil || !strings.Contains(err.Error(), "owned by user 65534") {
		t.Fatalf("loadConfig of a file owned by user 65534 = %v, want it refused", err)
	}
	if _, err := config.LoadRelay(p, false); err == nil || !strings.Contains(err.Error(), "owned by user 65534") {
		t.Fatalf("loadRelaySettings of a file owned by user 65534 = %v, want it refused", err)
	}
}
