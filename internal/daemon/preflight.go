package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/tokenauthd/tokenauthd/internal/access"
	"github.com/tokenauthd/tokenauthd/internal/config"
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

// may reports whether u may do want (access.Read...) to the file at path.
func may(u access.User, path string, want int) bool {
	fi, err := access.Stat(path)
	return err != nil || access.Allowed(u, fi, want) // missing: said elsewhere
}

// mayReach reports whether u may search every directory above path that
// exists.
func mayReach(u access.User, path string) bool {
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		if !may(u, d, access.Exec) {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// readable lists what a may not read of the files serve reads at start:
// the configuration itself and the secret and key files it names.
func readable(cfg *config.Config, a access.User) []finding {
	var out []finding
	for _, f := range append([]string{cfg.Path}, cfg.Files...) {
		if f == "" {
			continue
		}
		if !mayReach(a, f) || !may(a, f, access.Read) {
			out = append(out, finding{true, fmt.Sprintf("user %s may not read %s: serve run as %[1]s would fail (the package's recipe: chown root:%[1]s, chmod 0640)", a.Name, f)})
		}
	}
	return out
}

// preflight lists what serve, run as a, would fail on at start-up with
// cfg: the directories of its socket and journal (missing, or closed to
// a), the journal file itself, and the socket's group.
func preflight(cfg *config.Config, a access.User) []finding {
	out := readable(cfg, a)
	dir := func(what, path, makes string) {
		d := filepath.Dir(path)
		st, err := os.Stat(d)
		switch {
		case !mayReach(a, d):
			out = append(out, finding{true, fmt.Sprintf("user %s may not reach %s: a directory above it is closed to it (no x permission): serve run as %[1]s would fail", a.Name, d)})
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, finding{false, fmt.Sprintf("the %s's directory %s does not exist: serve creates none (under systemd, %s makes it; without: install -d -o %s -m %s %s)", what, d, makes, a.Name, map[string]string{"socket": "0755", "journal": "0700"}[what], d)})
		case err != nil:
			out = append(out, finding{true, fmt.Sprintf("the %s's directory: %v", what, err)})
		case !st.IsDir():
			out = append(out, finding{true, fmt.Sprintf("the %s's directory %s is not a directory", what, d)})
		case !may(a, d, access.Write|access.Exec):
			out = append(out, finding{true, fmt.Sprintf("user %s may not create the %s in %s (owner uid %d, mode %v): serve run as %[1]s would fail", a.Name, what, d, ownerOf(st), st.Mode().Perm())})
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
		if st, err := os.Stat(cfg.Journal); err == nil && !may(a, cfg.Journal, access.Read|access.Write) {
			out = append(out, finding{true, fmt.Sprintf("user %s may not read and write the journal %s (mode %v): serve run as %[1]s would fail", a.Name, cfg.Journal, st.Mode().Perm())})
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

func ownerOf(st fs.FileInfo) int {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(sys.Uid)
	}
	return -1
}
