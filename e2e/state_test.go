package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// The daemon's state directory and its journal, as another user of the
// machine could leave them: the daemon, run as root, must neither take a
// token twice nor write where such a user points it.

// requireRoot fails (TOKENAUTHD_E2E=1) or skips a test that acts as root
// and as the user nobody.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("TOKENAUTHD_E2E") == "1" {
		t.Fatal("this test runs as root (scripts/test does)")
	}
	t.Skip("this test runs as root")
}

// asNobody runs a shell script as the user nobody, with no groups.
func asNobody(t *testing.T, script string) {
	t.Helper()
	out, err := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		"sh", "-ec", script).CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %s: %v\n%s", script, err, out)
	}
}

// serveFails runs `tokenauthd serve` on cfg and expects it to refuse to
// start: it returns the exit status and the log, and fails t if serve
// is still running after 10 s.
func serveFails(t *testing.T, cfg, sock string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, fixture.Binary(t), "serve", "-config", cfg, "-socket", sock)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("serve started, and ran until killed:\n%s", out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("serve exited %v, want a refusal to start:\n%s", err, out)
	}
	return ee.ExitCode(), string(out)
}

// stateDir makes a directory for a journal that the user nobody can
// reach (not write): the test's own temporary directory is closed to
// every other user.
func stateDir(t *testing.T) string {
	t.Helper()
	top := t.TempDir()
	for _, d := range []string{filepath.Dir(top), top} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(top, "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestJournalDirectoryOthersCanWrite: the journal in a directory every user
// can write. The user nobody replaces the journal by its bare header and
// plants its lock as a symbolic link into a directory only root may
// write. Neither serve nor check-config may accept that directory; and
// once the directory is closed again, the daemon (as root) still refuses
// a journal and a lock that are not its own regular files, and creates no
// file through the link. Once the admin removes them, the journal is
// absent: a loss, and the token accepted before it is refused.
func TestJournalDirectoryOthersCanWrite(t *testing.T) {
	requireRoot(t)
	dir := stateDir(t)
	journal := filepath.Join(dir, "replay.journal")
	fixture.MakeJournal(t, journal)
	cfg := fixture.WriteConfig(t, t.TempDir(), fmt.Sprintf("[replay]\njournal = %q\n", journal))
	sock := filepath.Join(t.TempDir(), "d.sock")

	p := startServe(t, cfg, sock)
	tok := fixture.Token(t, "alice")
	if !fixture.Auth(t, sock, "alice", tok) {
		t.Fatal("a fresh token was refused")
	}
	if fixture.Auth(t, sock, "alice", tok) {
		t.Fatal("a token was accepted twice")
	}
	if code := p.signal(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d on SIGTERM", code)
	}

	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	rootOnly := t.TempDir()
	planted := filepath.Join(rootOnly, "planted")
	asNobody(t, fmt.Sprintf(`cd %q
rm -f replay.journal replay.journal.lock
printf TAJRNL01 > replay.journal
ln -s %q replay.journal.lock`, dir, planted))

	out, _, code := runBinary(t, nil, "check-config", "-config", cfg)
	if code != 1 || !strings.Contains(string(out), dir) || !strings.Contains(string(out), "write") {
		t.Errorf("check-config on a journal directory every user can write: exit %d, want 1 and an error naming it:\n%s", code, out)
	}
	code, log := serveFails(t, cfg, sock)
	if code != 1 || !strings.Contains(log, dir) {
		t.Errorf("serve on a journal directory every user can write: exit %d, want 1 and an error naming it:\n%s", code, log)
	}
	if _, err := os.Lstat(planted); err == nil {
		t.Fatal("serve created a file through the planted symbolic link")
	}

	// The admin closes the directory; nobody's files are still there.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"replay.journal.lock", "replay.journal"} {
		code, log = serveFails(t, cfg, sock)
		if code != 1 || !strings.Contains(log, want) {
			t.Errorf("serve with %s not a regular file of its own: exit %d, want 1 and an error naming it:\n%s", want, code, log)
		}
		if _, err := os.Lstat(planted); err == nil {
			t.Fatal("serve created a file through the planted symbolic link")
		}
		os.Remove(filepath.Join(dir, want))
	}

	// Both gone: the journal was lost, and says so.
	p = startServe(t, cfg, sock)
	if fixture.Auth(t, sock, "alice", tok) {
		t.Fatal("the token accepted before the journal was replaced was accepted again")
	}
	if !strings.Contains(p.log(), "the replay store may have lost records") {
		t.Errorf("no loss in the log:\n%s", p.log())
	}
}

// TestJournalEmptied: a journal cut back to its bare header (or to
// nothing) holds no record at all, not even one of when it was made: it
// was emptied, and the token accepted before is refused, with the loss in
// the log, as for a journal that vanished.
func TestJournalEmptied(t *testing.T) {
	for _, size := range []int64{8, 0} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := t.TempDir()
			journal := filepath.Join(dir, "replay.journal")
			fixture.MakeJournal(t, journal)
			cfg := fixture.WriteConfig(t, dir, fmt.Sprintf("[replay]\njournal = %q\n", journal))
			sock := filepath.Join(dir, "d.sock")
			p := startServe(t, cfg, sock)
			tok := fixture.Token(t, "alice")
			if !fixture.Auth(t, sock, "alice", tok) {
				t.Fatal("a fresh token was refused")
			}
			p.signal(t, syscall.SIGTERM)
			if err := os.Truncate(journal, size); err != nil {
				t.Fatal(err)
			}
			p = startServe(t, cfg, sock)
			if fixture.Auth(t, sock, "alice", tok) {
				t.Fatalf("the token was accepted again after its journal was cut to %d bytes", size)
			}
			for _, want := range []string{"the replay store may have lost records", "reason=store_forgot"} {
				if !strings.Contains(p.log(), want) {
					t.Errorf("log lacks %q:\n%s", want, p.log())
				}
			}
		})
	}
}

// TestFirstStart: a journal made before the daemon's first start (by
// `tokenauthd init-journal`, as the package's postinst and the recipes by
// hand make it) records when it was made: the first start on it is known
// to be one, and accepts a fresh token at once. One that vanished or was
// emptied after is still a loss. init-journal never makes a journal where
// one was, or where its lock or previous generation says one was.
func TestFirstStart(t *testing.T) {
	dir := t.TempDir()
	journal := filepath.Join(dir, "replay.journal")
	cfg := fixture.WriteConfig(t, dir, fmt.Sprintf("[replay]\njournal = %q\n", journal))
	sock := filepath.Join(dir, "d.sock")
	out, errOut, code := runBinary(t, nil, "init-journal", "-config", cfg)
	if code != 0 || !strings.Contains(string(out), journal) {
		t.Fatalf("init-journal: exit %d:\n%s%s", code, out, errOut)
	}
	if st, err := os.Stat(journal); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("init-journal made %v (%v), want a file of mode 0600", st, err)
	}
	p := startServe(t, cfg, sock)
	tok := fixture.Token(t, "alice")
	if !fixture.Auth(t, sock, "alice", tok) {
		t.Fatalf("the first start on a journal made for it refused a fresh token:\n%s", p.log())
	}
	if strings.Contains(p.log(), "may have lost records") {
		t.Errorf("the first start on a journal made for it counted a loss:\n%s", p.log())
	}
	if fixture.Auth(t, sock, "alice", tok) {
		t.Fatal("a token was accepted twice")
	}

	// Once used, the journal is never made again.
	for _, gone := range []string{"", ".lock"} {
		out, _, code = runBinary(t, nil, "init-journal", "-config", cfg)
		if code != 1 {
			t.Errorf("init-journal with %s there: exit %d, want 1:\n%s", journal+gone, code, out)
		}
		if gone == "" {
			p.signal(t, syscall.SIGKILL)
			if err := os.Remove(journal); err != nil {
				t.Fatal(err)
			}
		}
	}
	p = startServe(t, cfg, sock)
	if fixture.Auth(t, sock, "alice", tok) {
		t.Fatal("the token accepted before the journal vanished was accepted again")
	}
	for _, want := range []string{"may have lost records", "after a loss, make none"} {
		if !strings.Contains(p.log(), want) {
			t.Errorf("log of a start on a vanished journal lacks %q:\n%s", want, p.log())
		}
	}
}
