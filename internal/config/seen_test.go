package config

import (
	"strings"
	"testing"
	"time"
)

// TestIsUserSeen: isuser is true, false or "seen"; seen_for, in days, is
// only for "seen", bounded, 90 by default.
func TestIsUserSeen(t *testing.T) {
	const host = "[hosts.\"example.org\"]\ntoken_secret = \"s\"\notp_seed = \"GEZDGNBV\"\n"
	for _, c := range []struct {
		name    string
		text    string
		isUser  bool
		seen    bool
		seenFor time.Duration
		wantErr string
	}{
		// Unset: every name exists, as mod_auth_token answers.
		{name: "default", text: "", isUser: true},
		{name: "false", text: "isuser = false\n"},
		{name: "seen", text: "isuser = \"seen\"\n", seen: true, seenFor: 90 * 24 * time.Hour},
		{name: "seen for 7 days", text: "isuser = \"seen\"\nseen_for = 7\n", seen: true, seenFor: 7 * 24 * time.Hour},
		// A string other than "seen" is a mistake, not a yes.
		{name: "other string", text: "isuser = \"yes\"\n", wantErr: `isuser: true, false or "seen"`},
		{name: "number", text: "isuser = 1\n", wantErr: `isuser: true, false or "seen"`},
		// seen_for without "seen" would do nothing: said so.
		{name: "seen_for alone", text: "seen_for = 7\n", wantErr: `seen_for is for isuser = "seen"`},
		{name: "seen_for zero", text: "isuser = \"seen\"\nseen_for = 0\n", wantErr: "seen_for: 0 days"},
		{name: "seen_for huge", text: "isuser = \"seen\"\nseen_for = 100000\n", wantErr: "seen_for: 100000 days"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("c.toml", []byte(host+c.text), Options{})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Parse = %v, want an error with %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h := cfg.Hosts["example.org"]
			if h.IsUser != c.isUser || h.IsUserSeen != c.seen || h.SeenFor != c.seenFor {
				t.Errorf("isuser %v, seen %v, seen_for %v; want %v, %v, %v", h.IsUser, h.IsUserSeen, h.SeenFor, c.isUser, c.seen, c.seenFor)
			}
		})
	}
}
