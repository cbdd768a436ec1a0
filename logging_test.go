package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// stringer is a fmt.Stringer of any length.
type stringer string

func (s stringer) String() string { return string(s) }

// valuer is a slog.LogValuer of any length.
type valuer string

func (v valuer) LogValue() slog.Value { return slog.StringValue(string(v)) }

// TestCapHandler: every string a record carries (message, key, string,
// error, Stringer, bytes, group member, WithAttrs attribute) is cut to
// maxLogField bytes, whole characters, with the marker and the length.
func TestCapHandler(t *testing.T) {
	long := strings.Repeat("é", 30_000) // 60,000 bytes, 2 per character
	cut := capField(long)
	if len(cut) > maxLogField+len(logCutMarker)+8 || !strings.HasSuffix(cut, logCutMarker+"60000]") {
		t.Fatalf("capField: %d bytes, ending %q", len(cut), cut[len(cut)-30:])
	}
	if !strings.HasPrefix(cut, long[:maxLogField]) {
		t.Fatal("capField does not keep the start")
	}
	if s := capField("short"); s != "short" {
		t.Fatalf("capField(short) = %q", s)
	}
	odd := "x" + long // a character straddles the cut
	if c := capField(odd); !strings.HasPrefix(c, odd[:maxLogField-1]+logCutMarker) {
		t.Fatalf("capField cut inside a character: %q", c[maxLogField-4:maxLogField+8])
	}
	tests := []struct {
		name string
		log  func(l *slog.Logger)
	}{
		{"message", func(l *slog.Logger) { l.Info(long) }},
		{"string", func(l *slog.Logger) { l.Info("m", "user", long) }},
		{"key", func(l *slog.Logger) { l.Info("m", long, 1) }},
		{"error", func(l *slog.Logger) { l.Info("m", "err", errors.New(long)) }},
		{"wrapped error", func(l *slog.Logger) { l.Info("m", "err", fmt.Errorf("x: %w", errors.New(long))) }},
		{"Stringer", func(l *slog.Logger) { l.Info("m", "s", stringer(long)) }},
		{"bytes", func(l *slog.Logger) { l.Info("m", "b", []byte(long)) }},
		{"group", func(l *slog.Logger) { l.Info("m", slog.Group("g", "user", long)) }},
		{"WithAttrs", func(l *slog.Logger) { l.With("user", long).Info("m") }},
		{"WithGroup", func(l *slog.Logger) { l.WithGroup(long).Info("m", "a", 1) }},
		{"LogValuer", func(l *slog.Logger) { l.Info("m", "v", valuer(long)) }},
	}
	for _, json := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/json=%v", tc.name, json), func(t *testing.T) {
				var buf bytes.Buffer
				tc.log(slog.New(newLogHandler(&buf, json, slog.LevelInfo)))
				line := buf.String()
				if len(line) > 2*maxLogField+200 || !strings.Contains(line, logCutMarker) {
					t.Fatalf("%d bytes logged: %.300q", len(line), line)
				}
			})
		}
	}
}

// TestLongUserNameLogCut: a refused request with a 60 KB user name logs a
// line of bounded size that says it was cut (the stdin/stdout helper,
// in-process).
func TestLongUserNameLogCut(t *testing.T) {
	user := strings.Repeat("u", 60_000)
	code, out, errOut := runCmd(t, ejFrame("auth:"+user+":example.org:x"), "-config", rfcConfig(t, ""))
	if code != 0 || out != string(frameNo) {
		t.Fatalf("exit %d, stdout %x", code, out)
	}
	checkCutLog(t, errOut, 60_000)
}

// checkCutLog fails t unless log has a refusal line that says a field of
// n bytes was cut, and no line longer than 2 KB.
func checkCutLog(t testing.TB, log string, n int) {
	t.Helper()
	found := false
	for _, l := range strings.Split(log, "\n") {
		if len(l) > 2048 {
			t.Errorf("a log line of %d bytes: %.200q...", len(l), l)
		}
		if strings.Contains(l, "refused") && strings.Contains(l, fmt.Sprintf("%s%d]", logCutMarker, n)) {
			found = true
		}
	}
	if !found {
		t.Errorf("no refusal line with the cut marker in the log:\n%.2000s", log)
	}
}
