package bench

import (
	"os"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// TestMain removes the binary fixture.Binary builds once the tests end.
func TestMain(m *testing.M) { os.Exit(fixture.RunTests(m)) }
