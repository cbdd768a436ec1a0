package logs

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRateLog: a burst per reason is logged, the rest only counted, and the
// count is logged once per summary period; reasons do not starve each other.
func TestRateLog(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	rl := NewRateLog(slog.New(slog.NewJSONHandler(&buf, nil)), func() time.Time { return now })
	for range 1000 {
		rl.Log(slog.LevelInfo, "bad_signature", "refused")
	}
	rl.Log(slog.LevelInfo, "malformed", "refused")
	lines := decodeLines(t, &buf)
	if n := countMsg(lines, "refused", "bad_signature"); n != logBurst {
		t.Fatalf("%d bad_signature lines logged in a flood, want the burst %d", n, logBurst)
	}
	if n := countMsg(lines, "refused", "malformed"); n != 1 {
		t.Fatalf("another reason starved by the flood: %d lines", n)
	}
	// A second later: logRate more lines; after the period, one summary.
	now = now.Add(time.Second)
	for range 100 {
		rl.Log(slog.LevelInfo, "bad_signature", "refused")
	}
	now = now.Add(logSummaryEvery)
	rl.Log(slog.LevelInfo, "bad_signature", "refused")
	lines = decodeLines(t, &buf)
	if n := countMsg(lines, "refused", "bad_signature"); n != logBurst+logRate+1 {
		t.Fatalf("%d lines, want %d", n, logBurst+logRate+1)
	}
	var sum []map[string]any
	for _, l := range lines {
		if l["msg"] == "log lines suppressed by the rate limit" {
			sum = append(sum, l)
		}
	}
	if len(sum) != 1 || sum[0]["reason"] != "bad_signature" || sum[0]["suppressed"] != float64(1000-logBurst+100-logRate) {
		t.Fatalf("summary lines %v, want one for bad_signature with %d", sum, 1000-logBurst+100-logRate)
	}
	// Flush reports what is left (nothing here).
	rl.Flush()
	if n := len(decodeLines(t, &buf)); n != len(lines) {
		t.Fatalf("Flush logged %d lines with nothing suppressed", n-len(lines))
	}
}

func decodeLines(t *testing.T, b *bytes.Buffer) []map[string]any {
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

func countMsg(lines []map[string]any, msg, reason string) int {
	n := 0
	for _, l := range lines {
		if l["msg"] == msg && l["reason"] == reason {
			n++
		}
	}
	return n
}
