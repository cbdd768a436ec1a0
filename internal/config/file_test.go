package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/tokenauthd/tokenauthd/internal/fuzzcorpus"
)

// TestCheckNesting: depth is counted through table headers, dotted keys,
// inline tables and arrays, never inside strings or comments; every real
// configuration passes.
func TestCheckNesting(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("a.", n-1) + "a" }
	tests := []struct {
		name string
		text string
		want string // "" (passes), "deep" or "syntax"
	}{
		{"empty", "", ""},
		{"host section", "[hosts.\"example.org\"]\ntoken_secret = \"x\"\nold_otp_seeds = [\"A\", \"B\"]\n", ""},
		{"inline hosts", "hosts = { \"a.b\" = { token_secret = \"x\", old_token_secrets = [\"y\"] } }\n", ""},
		{"dotted keys", "hosts.\"example.org\".token_secret = \"x\"\n", ""},
		{"array of tables", "[[a.b]]\nc = [1]\n", ""},
		{"date with a space", "d = 1979-05-27 07:32:00 # comment [[[[[[[[[\n", ""},
		// Brackets, braces, dots and quotes inside strings and comments
		// are not structure.
		{"brackets in strings", `a = "[[[[[[[[[[{{{{{{{{{{a.b.c.d.e.f.g.h.i.j\"]]"` + "\n" +
			`b = '[[[[[[[[[[[.......'` + "\n" + `c = """` + "\n[[[[[[[[[[\n\"\"\"\"\"" + "\n" +
			`d = '''[[[[[[[[[[''''` + "\n# [[[[[[[[[[[[ a.b.c.d.e.f.g.h.i\n", ""},
		{"dots in a quoted key", `"a.b.c.d.e.f.g.h.i.j" = 1` + "\n" + `[x."1.2.3.4.5.6.7.8.9"]` + "\n", ""},
		{"nine-part header", "[" + deep(9) + "]\n", "deep"},
		{"eight-part header", "[" + deep(8) + "]\n", ""},
		{"header plus key", "[" + deep(7) + "]\nb.c = 1\n", "deep"},
		{"array table adds a level", "[[" + deep(8) + "]]\n", "deep"},
		{"dotted key", deep(9) + " = 1\n", "deep"},
		{"10,000-deep header", "[" + deep(10000) + "]\n", "deep"},
		{"inline tables", "x = " + strings.Repeat("{a = ", 8) + "1" + strings.Repeat("}", 8) + "\n", "deep"},
		{"arrays", "x = " + strings.Repeat("[", 8) + strings.Repeat("]", 8) + "\n", "deep"},
		{"seven arrays", "x = " + strings.Repeat("[", 7) + strings.Repeat("]", 7) + "\n", ""},
		{"10,000 arrays", "x = " + strings.Repeat("[", 10000), "deep"},
		{"unterminated string", "a = \"x\nb = 1\n", "syntax"},
		{"no value", "a =\n", "syntax"},
		{"no equals", "a b\n", "syntax"},
		{"unclosed header", "[a\n", "syntax"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckNesting([]byte(tc.text))
			var ne *nestError
			got := ""
			if errors.As(err, &ne) {
				got = map[bool]string{true: "deep", false: "syntax"}[ne.deep]
			} else if err != nil {
				t.Fatalf("CheckNesting: %v is not a *nestError", err)
			}
			if got != tc.want {
				t.Fatalf("CheckNesting(%.60q) = %v, want %q", tc.text, err, tc.want)
			}
		})
	}
}

// FuzzNesting checks the scan against the TOML parser: on any document the
// parser accepts, the scan refuses exactly those nested deeper than
// maxNesting, and never calls it a syntax error.
func FuzzNesting(f *testing.F) {
	fuzzcorpus.Check(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return // the parser is quadratic in depth: keep inputs small
		}
		err := CheckNesting(data)
		var v map[string]any
		if _, perr := toml.Decode(string(data), &v); perr != nil {
			return
		}
		want := tomlDepth(v) > maxNesting
		var ne *nestError
		if got := errors.As(err, &ne) && ne.deep; got != want || (err != nil && !ne.deep) {
			t.Fatalf("CheckNesting = %v; the parser reads depth %d (limit %d)", err, tomlDepth(v), maxNesting)
		}
	})
}

// tomlDepth is the depth CheckNesting counts, on a decoded document: one
// per key and per array from the top to the deepest value.
func tomlDepth(v any) int {
	d := 0
	switch x := v.(type) {
	case map[string]any:
		for _, m := range x {
			d = max(d, 1+tomlDepth(m))
		}
	case []map[string]any:
		d = 1
		for _, m := range x {
			d = max(d, 1+tomlDepth(m))
		}
	case []any:
		d = 1
		for _, m := range x {
			d = max(d, 1+tomlDepth(m))
		}
	}
	return d
}

// TestConfigFileChecks: the configuration and secret files must be regular
// files of bounded size that only their owner can write; one every user
// can read is loaded with a warning.
func TestConfigFileChecks(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := func(mode os.FileMode) string {
		p := filepath.Join(t.TempDir(), "secret")
		if err := os.WriteFile(p, []byte(testSecret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	config := func(mode os.FileMode, extra string) string {
		p := filepath.Join(t.TempDir(), "config.toml")
		body := "[hosts.\"example.org\"]\notp_seed = \"" + testSeed + "\"\n" + extra
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	inline := "token_secret = \"x\"\n"
	big := config(0o600, inline+strings.Repeat("# padding\n", maxConfigFile/10+1))
	tests := []struct {
		name    string
		path    string
		wantErr string
		warns   int
	}{
		{"private", config(0o600, inline), "", 0},
		{"group-readable", config(0o640, inline), "", 0},
		{"world-readable", config(0o644, inline), "", 1},
		{"group-writable", config(0o660, inline), "writable by others than its owner (mode 0660)", 0},
		{"world-writable", config(0o602, inline), "writable by others than its owner (mode 0602)", 0},
		{"a FIFO", fifo, "not a regular file", 0},
		{"a device", "/dev/zero", "not a regular file", 0},
		{"a directory", dir, "not a regular file", 0},
		{"too large", big, "larger than 1048576 bytes", 0},
		{"private secret file", config(0o600, "token_secret_file = \""+secret(0o600)+"\"\n"), "", 0},
		{"world-readable secret file", config(0o600, "token_secret_file = \""+secret(0o604)+"\"\n"), "", 1},
		{"both world-readable", config(0o604, "token_secret_file = \""+secret(0o644)+"\"\n"), "", 2},
		{"group-writable secret file", config(0o600, "token_secret_file = \""+secret(0o620)+"\"\n"), "token_secret_file: ", 0},
		{"secret file a FIFO", config(0o600, "token_secret_file = \""+fifo+"\"\n"), "not a regular file", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.path, Options{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("loadConfig = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var n int
			for _, w := range c.Warnings() {
				if strings.Contains(w, "readable by every user") {
					n++
				}
			}
			if n != tc.warns {
				t.Fatalf("warnings %q, want %d about readable files", c.Warnings(), tc.warns)
			}
		})
	}
}

// TestFuzzCorpus: every fuzz target of the package has committed seeds.
func TestFuzzCorpus(t *testing.T) { fuzzcorpus.Check(t) }

// Secrets of the test configurations.
const (
	testSecret = "config-test-token-secret"
	testSeed   = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
)
