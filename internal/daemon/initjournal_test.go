package daemon

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// TestInitJournal: init-journal makes the configured journal for -user,
// mode 0600, and refuses a configuration without one, a journal that is
// there, and a directory others than root or the user may write.
func TestInitJournal(t *testing.T) {
	dir := openTempDir(t)
	nobodys := filepath.Join(dir, "nobodys")
	if err := os.Mkdir(nobodys, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(nobodys, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o700); err != nil || os.Chmod(open, 0o777) != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, journal, user string
		code                int
		want                string
		owner               uint32 // of the journal made
	}{
		{"no journal configured", "", "", 1, "[replay] journal is not set", 0},
		{"for the daemon's user", filepath.Join(nobodys, "replay.journal"), "nobody", 0, "made " + filepath.Join(nobodys, "replay.journal") + " for user nobody", 65534},
		{"made already", filepath.Join(nobodys, "replay.journal"), "nobody", 1, "is never made again", 65534},
		{"in a directory of another user", filepath.Join(nobodys, "other.journal"), "root", 1, "is owned by user 65534", 0},
		{"in a directory every user may write", filepath.Join(open, "replay.journal"), "", 1, "others than its owner may write " + open, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			extra := ""
			if tt.journal != "" {
				extra = fmt.Sprintf("[replay]\njournal = %q\n", tt.journal)
			}
			cfg := fixture.WriteConfig(t, t.TempDir(), extra)
			if err := os.Chmod(filepath.Dir(cfg), 0o755); err != nil || os.Chmod(cfg, 0o644) != nil {
				t.Fatal(err)
			}
			args := []string{"-config", cfg}
			if tt.user != "" {
				args = append(args, "-user", tt.user)
			}
			var out bytes.Buffer
			e := &cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: fixture.Writer(t), Getenv: os.Getenv}
			code := RunInitJournal(t.Context(), e, args)
			if code != tt.code || !strings.Contains(out.String(), tt.want) {
				t.Fatalf("exit %d, want %d, and %q in:\n%s", code, tt.code, tt.want, out.String())
			}
			st, err := os.Lstat(tt.journal)
			if tt.code != 0 {
				if tt.owner == 0 && err == nil {
					t.Errorf("a journal was made: %v", st.Mode())
				}
				return
			}
			if err != nil || st.Mode() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != tt.owner {
				t.Errorf("made %v, %v; want a file of mode 0600 owned by %d", st, err, tt.owner)
			}
		})
	}
}

// TestCheckConfigAsTheService: root's check-config without -user checks
// the configuration an installed tokenauthd.service serves for that
// unit's User=, whose journal directory is that user's, and says so; for
// another configuration, or with no unit, it checks for root, who would
// refuse that directory.
func TestCheckConfigAsTheService(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := openTempDir(t)
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil || os.Chown(state, 65534, 65534) != nil {
		t.Fatal(err)
	}
	cfg := fixture.WriteConfig(t, dir, fmt.Sprintf("[daemon]\nsocket = %q\n[replay]\njournal = %q\n", filepath.Join(state, "s.sock"), filepath.Join(state, "replay.journal")))
	if err := os.Chmod(cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	units := t.TempDir()
	old := unitDirs
	unitDirs = []string{filepath.Join(units, "none"), units}
	t.Cleanup(func() { unitDirs = old })
	for _, tt := range []struct {
		name, unit string
		code       int
		want       string
	}{
		{"no unit", "", 1, "serve run as root refuses it"},
		{"a unit serving it", "[Service]\nUser=nobody\nExecStart=/usr/bin/tokenauthd serve -config " + cfg + "\n", 0, "note: checked for user nobody, who runs tokenauthd.service on it"},
		{"a unit serving another", "[Service]\nUser=nobody\nExecStart=/usr/bin/tokenauthd serve -config /etc/other.toml\n", 1, "serve run as root refuses it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			unit := filepath.Join(units, "tokenauthd.service")
			os.Remove(unit)
			if tt.unit != "" {
				if err := os.WriteFile(unit, []byte(tt.unit), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, out, _ := runCmd(t, "", "check-config", "-config", cfg)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want %d, and %q in:\n%s", code, tt.code, tt.want, out)
			}
		})
	}
}
