package e2e

import (
	"os"
	"os/exec"
	"testing"
)

// TestBinaryRemovedAfterTests: the tokenauthd that fixture.Binary builds
// for a package's tests (19 MB) is removed when they end: a test run
// leaves nothing in $TMPDIR, however often a contributor runs it.
func TestBinaryRemovedAfterTests(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs a go test of its own, which builds the binary")
	}
	tmp := t.TempDir()
	cmd := exec.Command("go", "test", "-count=1", "-run", "^TestCommandPage$", "../docs/man")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test ../docs/man: %v\n%s", err, out)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left in $TMPDIR after the tests: %s", e.Name())
	}
}
