package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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

// preflight lists what serve, run as a, would fail on at start-up with
// cfg: the directories of its socket and journal (missing, or closed to
// a), the journal file itself, and the socket's group.
func preflight(cfg *config.Config, a access.User) []finding {
	var out []finding
	dir := func(what, path, systemd string) {
		d := filepath.Dir(path)
		st, err := os.Stat(d)
		switch {
		case !mayReach(a, d):
			out = append(out, finding{true, fmt.Sprintf("user %s may not reach %s: a directory above it is closed to it (no x permission): serve run as %[1]s would fail", a.Name, d)})
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, finding{false, fmt.Sprintf("the %s's directory %s does not exist: serve creates none (under systemd, the unit's %s= makes it; without: install -d -o %s -m 0750 %s)", what, d, systemd, a.Name, d)})
		case err != nil:
			out = append(out, finding{true, fmt.Sprintf("the %s's directory: %v", what, err)})
		case !st.IsDir():
			out = append(out, finding{true, fmt.Sprintf("the %s's directory %s is not a directory", what, d)})
		case !may(a, d, access.Write|access.Exec):
			out = append(out, finding{true, fmt.Sprintf("user %s may not create the %s in %s (owner uid %d, mode %v): serve run as %[1]s would fail", a.Name, what, d, ownerOf(st), st.Mode().Perm())})
		}
	}
	dir("socket", cfg.Socket, "RuntimeDirectory")
	if cfg.Journal != "" {
		dir("journal", cfg.Journal, "StateDirectory")
		if st, err := os.Stat(cfg.Journal); err == nil && !may(a, cfg.Journal, access.Read|access.Write) {
			out = append(out, finding{true, fmt.Sprintf("user %s may not read and write the journal %s (mode %v): serve run as %[1]s would fail", a.Name, cfg.Journal, st.Mode().Perm())})
		}
	}
	if cfg.SocketGroup != "" {
		out = append(out, groupFinding(cfg.SocketGroup, a)...)
	}
	return out
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
