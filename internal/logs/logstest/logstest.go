// Package logstest reads JSON log lines back, for the tests of the
// packages that log. Only tests import it; it must never import package
// logs, whose own tests use it.
package logstest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// Decode returns the JSON log lines in b, failing t on a line that is not
// JSON.
func Decode(t testing.TB, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// Count counts the lines with message msg and reason reason.
func Count(lines []map[string]any, msg, reason string) int {
	n := 0
	for _, l := range lines {
		if l["msg"] == msg && l["reason"] == reason {
			n++
		}
	}
	return n
}
