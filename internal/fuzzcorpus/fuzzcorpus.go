// Package fuzzcorpus checks, in tests, that every fuzz target of a package
// has a committed seed corpus: a target without seeds runs nothing under
// `go test` and would go unnoticed.
package fuzzcorpus

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Check fails t unless every FuzzX function declared in the _test.go files
// of the current directory (a test's package directory) has at least one
// seed file in testdata/fuzz/FuzzX, each in Go's corpus format. It also
// fails if the directory has no fuzz target at all.
func Check(t testing.TB) {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Fuzz") {
				targets = append(targets, fn.Name.Name)
			}
		}
	}
	if len(targets) == 0 {
		t.Fatal("no fuzz target found in this package's tests")
	}
	for _, target := range targets {
		dir := filepath.Join("testdata", "fuzz", target)
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Errorf("%s has no seed corpus: %s is missing or empty", target, dir)
			continue
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Error(err)
				continue
			}
			if !bytes.HasPrefix(b, []byte("go test fuzz v1\n")) {
				t.Errorf("%s: not a Go fuzz corpus file", filepath.Join(dir, e.Name()))
			}
		}
	}
}
