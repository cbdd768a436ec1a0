package replay

import (
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fuzzcorpus"
)

// Every fuzz target of this package has seeds that `go test` runs.
func TestFuzzCorpus(t *testing.T) { fuzzcorpus.Check(t) }
