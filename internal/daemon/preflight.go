package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/tokenauthd/tokenauthd/internal/config"
)

// finding is one thing check-config found that serve would trip on.
type finding struct {
	err bool // an error: serve fails; else a warning
	msg string
}

// account is the user serve would run as: its uid and every group it is
// in.
type account struct {
	name string
	uid  int
	gids []int
}

// lookupAccount finds the user name (the current user if "").
func lookupAccount(name string) (account, error) {
	var u *user.User
	var err error
	if name == "" {
		u, err = user.Current()
	} else {
		u, err = user.Lookup(name)
	}
	if err != nil {
		return account{}, err
	}
	a := account{name: u.Username}
	if a.uid, err = strconv.Atoi(u.Uid); err != nil {
		return account{}, err
	}
	ids, err := u.GroupIds()
	if err != nil {
		return account{}, err
	}
	for _, id := range ids {
		if g, err := strconv.Atoi(id); err == nil {
			a.gids = append(a.gids, g)
		}
	}
	return a, nil
}

// may reports whether a may do what bits (r=4, w=2, x=1) ask of a file
// with this mode and owner, as the kernel decides (root may do anything
// but execute a file no one may execute).
func (a account) may(st fs.FileInfo, bits fs.FileMode) bool {
	if a.uid == 0 {
		return true
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return true // cannot tell: let serve say
	}
	perm := st.Mode().Perm()
	switch {
	case int(sys.Uid) == a.uid:
		return perm>>6&bits == bits
	case slices.Contains(a.gids, int(sys.Gid)):
		return perm>>3&bits == bits
	}
	return perm&bits == bits
}

// mayReach reports whether a may search every directory above path that
// exists.
func (a account) mayReach(path string) bool {
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && !a.may(st, 1) {
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
func preflight(cfg *config.Config, a account) []finding {
	var out []finding
	dir := func(what, path, systemd string) {
		d := filepath.Dir(path)
		st, err := os.Stat(d)
		switch {
		case !a.mayReach(d):
			out = append(out, finding{true, fmt.Sprintf("user %s may not reach %s: a directory above it is closed to it (no x permission): serve run as %[1]s would fail", a.name, d)})
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, finding{false, fmt.Sprintf("the %s's directory %s does not exist: serve creates none (under systemd, the unit's %s= makes it; without: install -d -o %s -m 0750 %s)", what, d, systemd, a.name, d)})
		case err != nil:
			out = append(out, finding{true, fmt.Sprintf("the %s's directory: %v", what, err)})
		case !st.IsDir():
			out = append(out, finding{true, fmt.Sprintf("the %s's directory %s is not a directory", what, d)})
		case !a.may(st, 3):
			out = append(out, finding{true, fmt.Sprintf("user %s may not create the %s in %s (owner uid %d, mode %v): serve run as %[1]s would fail", a.name, what, d, ownerOf(st), st.Mode().Perm())})
		}
	}
	dir("socket", cfg.Socket, "RuntimeDirectory")
	if cfg.Journal != "" {
		dir("journal", cfg.Journal, "StateDirectory")
		if st, err := os.Stat(cfg.Journal); err == nil && !a.may(st, 6) {
			out = append(out, finding{true, fmt.Sprintf("user %s may not read and write the journal %s (mode %v): serve run as %[1]s would fail", a.name, cfg.Journal, st.Mode().Perm())})
		}
	}
	if cfg.SocketGroup != "" {
		out = append(out, groupFinding(cfg.SocketGroup, a)...)
	}
	return out
}

// groupFinding checks that serve, run as a, may give its socket to group.
func groupFinding(group string, a account) []finding {
	gid, err := strconv.Atoi(group)
	if err != nil {
		g, lerr := user.LookupGroup(group)
		if lerr != nil {
			return []finding{{true, fmt.Sprintf("[daemon] socket_group %q: no such group", group)}}
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	if a.uid != 0 && !slices.Contains(a.gids, gid) {
		return []finding{{true, fmt.Sprintf("[daemon] socket_group %q: user %s is not a member, so serve run as %[2]s cannot give its socket to it (chown: operation not permitted): add it (usermod -aG %[1]s %[2]s) or run serve as a member", group, a.name)}}
	}
	return nil
}

func ownerOf(st fs.FileInfo) int {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(sys.Uid)
	}
	return -1
}
