package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A Redis timeout as long as the XMPP side's default wait is warned about:
// that side would give up on slow answers first.
func TestWarnRedisTimeout(t *testing.T) {
	for _, tt := range []struct {
		timeout time.Duration
		warn    bool
	}{
		{500 * time.Millisecond, false},
		{1999 * time.Millisecond, false},
		{2 * time.Second, true},
		{10 * time.Second, true},
	} {
		var buf bytes.Buffer
		warnRedisTimeout(tt.timeout, slog.New(slog.NewTextHandler(&buf, nil)))
		got := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "tokenauthd_timeout")
		if got != tt.warn {
			t.Errorf("warnRedisTimeout(%v) logged %q, want a warning: %v", tt.timeout, buf.String(), tt.warn)
		}
	}
}
