package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// TestIsUserSeen: on a host with isuser = "seen", isuser is yes only for a
// user whose login was accepted, the name as the server passed it; a
// refused login counts for nothing; a host with isuser = true still says
// yes to every name. Through the stdin/stdout helper, step by step.
func TestIsUserSeen(t *testing.T) {
	path := fixture.ConfigPath(t)
	fixture.WriteFile(t, path, fixture.HostBlock("seen.example", fixture.SecretA, fixture.SeedA, nil, nil)+
		"isuser = \"seen\"\n"+fixture.HostBlock("every.example", fixture.SecretA, fixture.SeedA, nil, nil))
	s := startSession(t, path)
	now := time.Now()
	good := fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", "seen.example", now)
	forged := fixture.MintAt(t, fixture.SecretH, fixture.SeedA, "bob", "seen.example", now)
	for i, c := range []struct{ req, want string }{
		{"isuser:alice:seen.example", "0"},                            // never logged in
		{"isuser:anyone:every.example", "1"},                          // isuser = true
		{"auth:bob:seen.example:" + forged, "0"},                      // refused
		{"isuser:bob:seen.example", "0"},                              // a refused login counts for nothing
		{"auth:alice:seen.example:" + good, "1"},                      // accepted
		{"isuser:alice:seen.example", "1"},                            // seen
		{"isuser:Alice:seen.example", "0"},                            // the name as passed
		{"isuser:carol:seen.example", "0"},                            // never seen
		{"isuser:alice:every.example", "1"},                           // another host's answer
		{"auth:alice:seen.example:" + good, "0"},                      // a replay
		{"isuser:alice:seen.example", "1"},                            // still seen
		{"isuser:alice:unknown.example", "0"},                         // no such host
		{"isuser:alice:seen.example.", "0"},                           // not the host
		{"isuser:" + strings.Repeat("a", 900) + ":seen.example", "0"}, // long name
	} {
		if got := s.ask(c.req); got != c.want {
			t.Fatalf("step %d: %.60q = %s, want %s (stderr: %s)", i, c.req, got, c.want, s.stderr)
		}
	}
}

// TestSeenFileRestart: the seen users' file beside a journal keeps a user
// known across a restart; one absent beside a journal in use is a loss,
// warned and counted; a new installation's is not.
func TestSeenFileRestart(t *testing.T) {
	for _, c := range []struct {
		name     string
		prepare  func(t *testing.T, journal string) // before the second open
		known    bool
		lost     uint64
		warnWith string
	}{
		{name: "restart", known: true},
		{name: "lost beside a journal in use", prepare: func(t *testing.T, j string) {
			os.Remove(j + ".seen")
			os.WriteFile(j, make([]byte, 100), 0o600)
		}, lost: 1, warnWith: "absent beside a journal in use"},
		{name: "damaged", prepare: func(t *testing.T, j string) {
			b, _ := os.ReadFile(j + ".seen")
			b[8] ^= 1 // alice's record; bob's after it is whole
			os.WriteFile(j+".seen", b, 0o600)
		}, lost: 1, warnWith: "damaged records"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.Chmod(dir, 0o700)
			journal := filepath.Join(dir, "replay.journal")
			log := slog.New(slog.DiscardHandler)
			b, err := openSeenFile(journal, 100, log)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for _, user := range []string{"alice", "bob"} {
				if _, err := b.Login(ctx, "h", user, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			b.Close()
			if c.prepare != nil {
				c.prepare(t, journal)
			}
			var out fixture.Buffer
			b, err = openSeenFile(journal, 100, slog.New(slog.NewTextHandler(&out, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if ok, _ := b.Known(ctx, "h", "alice", time.Hour); ok != c.known {
				t.Errorf("alice known = %v, want %v", ok, c.known)
			}
			if s := b.Stats(); s.Losses != c.lost {
				t.Errorf("losses = %d, want %d", s.Losses, c.lost)
			}
			if c.warnWith != "" && (!strings.Contains(out.String(), "level=WARN") || !strings.Contains(out.String(), c.warnWith)) {
				t.Errorf("log = %s, want a warning with %q", out.String(), c.warnWith)
			}
		})
	}
}

// TestCheckConfigSeen: check-config says what each host's isuser answers,
// and where a "seen" host's users are kept.
func TestCheckConfigSeen(t *testing.T) {
	for _, c := range []struct {
		name, extra string
		want        []string
	}{
		{"memory", "", []string{`host "seen.example": isuser = "seen": a user exists who logged in within 7 days; seen users are kept in memory only`,
			`host "every.example": isuser = true: every name exists`}},
		{"redis", "[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:1/0\"\n", []string{`kept in Redis, keys tokenauthd:seen:*`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := fixture.ConfigPath(t)
			fixture.WriteFile(t, path, fixture.HostBlock("seen.example", fixture.SecretA, fixture.SeedA, nil, nil)+
				"isuser = \"seen\"\nseen_for = 7\n"+fixture.HostBlock("every.example", fixture.SecretA, fixture.SeedA, nil, nil)+
				fixture.HostBlock("none.example", fixture.SecretA, fixture.SeedA, nil, nil)+"isuser = false\n"+c.extra)
			var out, errb strings.Builder
			RunCheckConfig(context.Background(), &cli.Env{Stdout: &out, Stderr: &errb}, []string{"-config", path})
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("check-config lacks %q:\n%s", w, out.String())
				}
			}
			if strings.Contains(out.String(), `"none.example": isuser`) {
				t.Errorf("check-config notes a host with isuser = false:\n%s", out.String())
			}
		})
	}
}

// TestIsUserSeenJWT: an accepted JWT makes its user seen as a token does;
// a replayed one or one of another user changes nothing.
func TestIsUserSeenJWT(t *testing.T) {
	dir := t.TempDir()
	key := fixture.NewJWTKey(t, dir, "app-1")
	path := fixture.ConfigPath(t)
	fixture.WriteFile(t, path, "[hosts.\"j.example\"]\nisuser = \"seen\"\n"+key.Section("j.example"))
	s := startSession(t, path)
	jwt := key.Mint(t, "alice", "j.example")
	for i, c := range []struct{ req, want string }{
		{"isuser:alice:j.example", "0"},
		{"auth:bob:j.example:" + jwt, "0"}, // alice's JWT as bob's password
		{"isuser:bob:j.example", "0"},
		{"auth:alice:j.example:" + jwt, "1"},
		{"isuser:alice:j.example", "1"},
		{"auth:alice:j.example:" + jwt, "0"}, // replayed
		{"isuser:alice:j.example", "1"},
	} {
		if got := s.ask(c.req); got != c.want {
			t.Fatalf("step %d: %.40q = %s, want %s (stderr: %s)", i, c.req, got, c.want, s.stderr)
		}
	}
}
