package protocol

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestProsodyModuleBounds ties tokenauthd's Prosody module, a client of
// this protocol written in Lua, to this package's bounds: it never sends a
// line longer than a server reads by default (DefaultMaxLine), and it
// waits for an answer as long as every other client by default
// (DefaultClientTimeout), in its code and in its documentation.
func TestProsodyModuleBounds(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "prosody", "mod_auth_tokenauthd.lua"))
	if err != nil {
		t.Fatal(err)
	}
	wait := DefaultClientTimeout.Seconds()
	tests := []struct {
		what string
		re   string // its first group is a number
		ok   func(float64) bool
		want string
	}{
		{"max_line", `(?m)^local max_line = (\d+);$`,
			func(n float64) bool { return n >= 1 && n <= DefaultMaxLine }, "1 to protocol.DefaultMaxLine"},
		{"tokenauthd_timeout's default", `get_option_number\("tokenauthd_timeout", ([0-9.]+)\)`,
			func(s float64) bool { return s == wait }, "protocol.DefaultClientTimeout"},
		{"the timeout used for a bad tokenauthd_timeout", `(?m)^\ttimeout = ([0-9.]+);$`,
			func(s float64) bool { return s == wait }, "protocol.DefaultClientTimeout"},
		{"the log line on a bad tokenauthd_timeout", `must be positive, using ([0-9.]+) seconds`,
			func(s float64) bool { return s == wait }, "protocol.DefaultClientTimeout"},
		{"the documented default", `(?m)^--   tokenauthd_timeout = ([0-9.]+) +-- seconds, the default$`,
			func(s float64) bool { return s == wait }, "protocol.DefaultClientTimeout"},
	}
	for _, tt := range tests {
		m := regexp.MustCompile(tt.re).FindAllSubmatch(src, -1)
		if len(m) != 1 {
			t.Errorf("%s: %d matches of %s in the module, want 1", tt.what, len(m), tt.re)
			continue
		}
		n, err := strconv.ParseFloat(string(m[0][1]), 64)
		if err != nil || !tt.ok(n) {
			t.Errorf("%s is %s, want %s", tt.what, m[0][1], tt.want)
		}
	}
}
