package logs

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/logs/logstest"
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
	lines := logstest.Decode(t, &buf)
	if n := logstest.Count(lines, "refused", "bad_signature"); n != logBurst {
		t.Fatalf("%d bad_signature lines logged in a flood, want the burst %d", n, logBurst)
	}
	if n := logstest.Count(lines, "refused", "malformed"); n != 1 {
		t.Fatalf("another reason starved by the flood: %d lines", n)
	}
	// A second later: logRate more lines; after the period, one summary.
	now = now.Add(time.Second)
	for range 100 {
		rl.Log(slog.LevelInfo, "bad_signature", "refused")
	}
	now = now.Add(logSummaryEvery)
	rl.Log(slog.LevelInfo, "bad_signature", "refused")
	lines = logstest.Decode(t, &buf)
	if n := logstest.Count(lines, "refused", "bad_signature"); n != logBurst+logRate+1 {
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
	if n := len(logstest.Decode(t, &buf)); n != len(lines) {
		t.Fatalf("Flush logged %d lines with nothing suppressed", n-len(lines))
	}
}
