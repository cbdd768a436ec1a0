package logs

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
// MaxField bytes, whole characters, with the marker and the length.
func TestCapHandler(t *testing.T) {
	long := strings.Repeat("é", 30_000) // 60,000 bytes, 2 per character
	cut := CapField(long)
	if len(cut) > MaxField+len(CutMarker)+8 || !strings.HasSuffix(cut, CutMarker+"60000]") {
		t.Fatalf("capField: %d bytes, ending %q", len(cut), cut[len(cut)-30:])
	}
	if !strings.HasPrefix(cut, long[:MaxField]) {
		t.Fatal("capField does not keep the start")
	}
	if s := CapField("short"); s != "short" {
		t.Fatalf("CapField(short) = %q", s)
	}
	odd := "x" + long // a character straddles the cut
	if c := CapField(odd); !strings.HasPrefix(c, odd[:MaxField-1]+CutMarker) {
		t.Fatalf("capField cut inside a character: %q", c[MaxField-4:MaxField+8])
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
				tc.log(slog.New(NewHandler(&buf, json, slog.LevelInfo)))
				line := buf.String()
				if len(line) > 2*MaxField+200 || !strings.Contains(line, CutMarker) {
					t.Fatalf("%d bytes logged: %.300q", len(line), line)
				}
			})
		}
	}
}

// TestLongUserNameLogCut: a refused request with a 60 KB user name logs a
