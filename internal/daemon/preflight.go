package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tokenauthd/tokenauthd/internal/access"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/replay"
)

// finding is one thing check-config found that serve would trip on.
type finding struct {
	err bool // an error: serve fails; else a warning
	msg string
}

// lookupAccount finds the user name (the current user if "").
func lookupAccount(name string) (access.User, error) {
	if name == "" {
		return access.CurrentUser()
	}
	return access.LookupUser(name)
}

// readable lists what a may not read of the files serve reads at start:
// the configuration itself and the secret and key files it names.
func readable(cfg *config.Config, a access.User) []finding {
	var out []finding
	for _, f := range append([]string{cfg.Path}, cfg.Files...) {
		if f == "" {
			continue
		}
		// A file that does not exist was refused when the configuration
		// loaded.
		if where, _, err := access.Denied(a, f, access.Read, access.Stat); where != "" && err == nil {
			out = append(out, finding{true, fmt.Sprintf("user %s may not read %s: serve run as %[1]s would fail (the package's recipe: chown root:%[1]s, chmod 0640)", a.Name, f)})
		}
	}
	return out
}

// preflight lists what serve, run as a, would fail on at start-up with
// cfg: the directories of its socket and journal (missing, or closed to
// a), the journal's files and directories (anyone but root or a may
// write them), and the socket's group.
func preflight(cfg *config.Config, a access.User) []finding {
	out := readable(cfg, a)
	dir := func(what, path, makes string) {
		d := filepath.Dir(path)
		where, fi, err := access.Denied(a, d, access.Write|access.Exec, access.Stat)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, finding{false, fmt.Sprintf("the %s's directory %s does not exist: serve creates none (under systemd, %s makes it; without: install -d -o %s -m %s %s)", what, d, makes, a.Name, map[string]string{"socket": "0755", "journal": "0700"}[what], d)})
		case err != nil:
			out = append(out, finding{true, fmt.Sprintf("the %s's directory: %v", what, err)})
		case where != "" && where != d:
			out = append(out, finding{true, fmt.Sprintf("user %s may not reach %s: a directory above it is closed to it (no x permission): serve run as %[1]s would fail", a.Name, d)})
		case !fi.Mode.IsDir():
			out = append(out, finding{true, fmt.Sprintf("the %s's directory %s is not a directory", what, d)})
		case where == d:
			out = append(out, finding{true, fmt.Sprintf("user %s may not create the %s in %s (owner uid %d, mode %v): serve run as %[1]s would fail", a.Name, what, d, fi.UID, fi.Mode.Perm())})
		}
	}
	// Under socket activation systemd makes the socket, its directory and
	// its group: serve makes none of them.
	activated := socketUnitListens(cfg.Socket)
	if !activated {
		dir("socket", cfg.Socket, "tokenauthd.socket (DirectoryMode=0755)")
	}
	if cfg.Journal != "" {
		dir("journal", cfg.Journal, "the service's StateDirectory=")
		// Whoever else may write its directory may empty or replace it.
		if err := replay.CheckJournal(cfg.Journal, a.UID); err != nil {
			out = append(out, finding{true, fmt.Sprintf("%s: serve run as %s refuses it", strings.TrimPrefix(err.Error(), "replay: journal: "), a.Name)})
		}
		// Its directories are dir's to report.
		if where, fi, err := access.Denied(a, cfg.Journal, access.Read|access.Write, access.Stat); where == filepath.Clean(cfg.Journal) && err == nil {
			out = append(out, finding{true, fmt.Sprintf("user %s may not read and write the journal %s (mode %v): serve run as %[1]s would fail", a.Name, cfg.Journal, fi.Mode.Perm())})
		}
	}
	if cfg.SocketGroup != "" && !activated {
		out = append(out, groupFinding(cfg.SocketGroup, a)...)
	}
	return out
}

// unitDirs are where systemd's socket units are installed.
var unitDirs = []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

// socketUnitListens reports whether an installed tokenauthd.socket listens
// on path: then systemd makes the socket and hands it to serve.
func socketUnitListens(path string) bool {
	for _, d := range unitDirs {
		b, err := os.ReadFile(filepath.Join(d, "tokenauthd.socket"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "ListenStream="); ok && strings.TrimSpace(v) == path {
				return true
			}
		}
	}
	return false
}

// serviceUser returns the User= of the installed tokenauthd.service (the
// first of unitDirs that has one, as systemd picks it; drop-ins are not
// read) if its ExecStart runs serve on the configuration at path, "" if
// not: the user check-config checks as when root runs it without -user.
func serviceUser(path string) string {
	for _, d := range unitDirs {
		b, err := os.ReadFile(filepath.Join(d, "tokenauthd.service"))
		if err != nil {
			continue
		}
		user, serves := "", false
		for _, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			if v, ok := strings.CutPrefix(l, "User="); ok {
				user = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
				f := strings.Fields(v)
				serves = slices.Contains(f, "serve") && slices.Contains(f, filepath.Clean(path))
			}
		}
		if serves {
			return user
		}
		return ""
	}
	return ""
}

// groupFinding checks that serve, run as a, may give its socket to group.
func groupFinding(group string, a access.User) []finding {
	g, err := access.LookupGroup(group)
	if err != nil {
		return []finding{{true, fmt.Sprintf("[daemon] socket_group %q: no such group", group)}}
	}
	if a.UID != 0 && !slices.Contains(a.GIDs, g.GID) {
		return []finding{{true, fmt.Sprintf("[daemon] socket_group %q: user %s is not a member, so serve run as %[2]s cannot give its socket to it (chown: operation not permitted): add it (usermod -aG %[1]s %[2]s) or run serve as a member", group, a.Name)}}
	}
	return nil
}
