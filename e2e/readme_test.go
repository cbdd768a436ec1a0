package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/replay"
)

// readmeSnippet returns the README's one fenced code block in lang.
func readmeSnippet(t *testing.T, lang string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\n```"+lang+"\n(.*?)\n```\n").FindAllStringSubmatch(string(b), -1)
	if len(m) != 1 {
		t.Fatalf("README.md has %d ```%s blocks, want 1", len(m), lang)
	}
	return m[0][1]
}

// checkExampleToken verifies tok for alice@example.org with the example
// configuration, which the README's snippets use.
func checkExampleToken(t *testing.T, tok string) {
	t.Helper()
	cfg, err := config.Load("../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	v, err := config.NewVerifier(cfg, replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9]{40} [A-Za-z0-9+/]{43}=$`).MatchString(tok) {
		t.Errorf("token %q is not 8 + 32 digits, a space and base64", tok)
	}
	if r := v.Verify(context.Background(), "alice", "example.org", tok); !r.OK() {
		t.Errorf("the README snippet's token is refused: %s (%v)", r.Reason, r.Err)
	}
}

// The README's Python snippet works: its token is accepted.
func TestReadmePython(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:pyotp")
	out, err := exec.Command(fixture.DebianPython, "-c", readmeSnippet(t, "python")).Output()
	if err != nil {
		t.Fatalf("README's Python: %v", err)
	}
	checkExampleToken(t, strings.TrimSpace(string(out)))
}

// The README's Go snippet works: its token is accepted.
func TestReadmeGo(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(readmeSnippet(t, "go")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "main.go")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("README's Go: %v", err)
	}
	checkExampleToken(t, strings.TrimSpace(string(out)))
}
