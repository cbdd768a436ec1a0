package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/tokenauthd/tokenauthd"

// TestRoomRules checks the rules between rooms that ARCHITECTURE.md writes
// down and that the packages' (non-test) imports can show: what a room
// imports is what it knows; the libraries must not even link go-redis.
func TestRoomRules(t *testing.T) {
	deps := goList(t, "Imports")
	linked := goList(t, "Deps")
	for _, room := range []string{"/protocol", "/verifier", "/replay"} {
		if slices.Contains(linked[room], "github.com/redis/go-redis/v9") {
			t.Errorf("%s links go-redis", room)
		}
	}
	never := []struct {
		room string
		deps []string
	}{
		{"/protocol", []string{"/verifier", "/replay"}},
		{"/verifier", []string{"/protocol"}},
		{"/replay", []string{"/verifier", "/protocol"}},
		{"/internal/daemon", []string{"/internal/bench", "/internal/explain"}},
		{"/internal/config", []string{"/internal/daemon", "/internal/relay", "/internal/cli"}},
		{"/internal/cli", []string{"/internal/daemon", "/internal/relay", "/verifier"}},
		{"/internal/logs", []string{"/verifier", "/protocol", "/internal/daemon"}},
		{"/internal/term", []string{"/protocol", "/verifier", "/internal/daemon"}},
		{"/internal/relay", []string{"/verifier", "/replay", "/internal/daemon"}},
	}
	for _, r := range never {
		d, ok := deps[r.room]
		if !ok {
			t.Errorf("no package %s", r.room)
			continue
		}
		for _, n := range r.deps {
			if n = module + n; slices.Contains(d, n) {
				t.Errorf("%s depends on %s", r.room, n)
			}
		}
	}
	for room, d := range linked {
		for _, testOnly := range []string{"/internal/fixture", "/internal/daemon/daemontest", "/internal/logs/logstest"} {
			if slices.Contains(d, module+testOnly) && room != "/internal/daemon/daemontest" {
				t.Errorf("%s, which is not a test, depends on %s", room, testOnly)
			}
		}
	}
}

// The root holds main.go and at most two more files of code, and at most
// three test files.
func TestRootHoldsTheCommandTable(t *testing.T) {
	files, err := filepath.Glob("../*.go")
	if err != nil {
		t.Fatal(err)
	}
	var code, tests []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			tests = append(tests, f)
		} else {
			code = append(code, f)
		}
	}
	if _, err := os.Stat("../main.go"); err != nil || len(code) > 3 || len(tests) > 3 {
		t.Errorf("root: code %v, tests %v", code, tests)
	}
}

// goList returns, for every package of the module, a list field of go
// list's (Imports, Deps), by path below the module.
func goList(t *testing.T, field string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join ."+field+` " "}}`, module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	m := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		m[strings.TrimPrefix(f[0], module)] = f[1:]
	}
	return m
}
