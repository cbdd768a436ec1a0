package daemon

import (
	"slices"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/config"
)

// TestRestartOnlyHTTP: a reload applies [http]'s applications and keys,
// but not where it listens: that change is reported for the next restart.
func TestRestartOnlyHTTP(t *testing.T) {
	tcp := &config.HTTP{Listen: "127.0.0.1:5290", Apps: map[string]config.HTTPApp{"a": {Key: []byte("0123456789abcdef")}}}
	rekeyed := &config.HTTP{Listen: "127.0.0.1:5290", Apps: map[string]config.HTTPApp{"a": {Key: []byte("fedcba9876543210")}}}
	unix := &config.HTTP{Socket: "/run/tokenauthd-http/http.sock"}
	for _, tt := range []struct {
		name     string
		old, cfg *config.HTTP
		restart  bool
	}{
		{"same", tcp, tcp, false},
		{"new key", tcp, rekeyed, false},
		{"moved", tcp, unix, true},
		{"turned on", nil, tcp, true},
		{"turned off", tcp, nil, true},
	} {
		got := slices.Contains(restartOnly(&config.Config{HTTP: tt.old}, &config.Config{HTTP: tt.cfg}), "http.listen")
		if got != tt.restart {
			t.Errorf("%s: http.listen reported for restart: %v, want %v", tt.name, got, tt.restart)
		}
	}
}
