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
