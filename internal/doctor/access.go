package doctor

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tokenauthd/tokenauthd/internal/access"
)

// service is an XMPP server as doctor sees it: the user it runs as, with
// every group it gets, and the sandbox of its systemd unit.
type service struct {
	name string // "ejabberd", "Prosody"
	unit unitSettings
	user User
	// userErr says why the user could not be found ("" if it was).
	userErr string
}

// lookupService reads a server's unit and finds its user (the unit's User=,
// else defaultUser) with its groups and the unit's SupplementaryGroups=.
func (d *doctor) lookupService(name, unitName, defaultUser string) *service {
	s := &service{name: name}
	files, err := d.sys.UnitFiles(unitName)
	if err != nil {
		d.add(Finding{Severity: Note, Key: unitName, Message: "cannot read the unit: " + errText(err) + "; its sandbox is not checked"})
	}
	s.unit = parseUnit(unitName, files)
	userName := defaultUser
	if s.unit.user != "" {
		userName = s.unit.user
	}
	u, err := d.sys.LookupUser(userName)
	if err != nil {
		s.user = User{Name: userName, UID: -1, GID: -1}
		s.userErr = fmt.Sprintf("no user %q on this machine", userName)
		return s
	}
	for _, gname := range s.unit.supplementaryGroups {
		if g, err := d.sys.LookupGroup(gname); err == nil && !slices.Contains(u.GIDs, g.GID) {
			u.GIDs = append(u.GIDs, g.GID)
		}
	}
	s.user = u
	return s
}

// inGroup says whether the service's processes get group gid.
func (s *service) inGroup(gid int) bool { return slices.Contains(s.user.GIDs, gid) }

// access says whether the service's user can do want (access.Read, ...) to
// the file at path, by the permission bits of the file and of every
// directory on the way to it (ACLs and AppArmor are not read), and what
// its unit's sandbox hides. It returns "" if it can, else why not.
func (d *doctor) access(s *service, path string, want int) string {
	if s.userErr != "" {
		return s.userErr
	}
	if why := s.unit.hides(path); why != "" {
		return why
	}
	where, fi, err := access.Denied(s.user, path, want, d.sys.Stat)
	switch {
	case where == "":
		return ""
	case where != filepath.Clean(path) && err != nil:
		return fmt.Sprintf("%s: %s", where, errText(err))
	case err != nil:
		return errText(err)
	case where != filepath.Clean(path):
		return fmt.Sprintf("%s (%s) does not let %s through", where, d.describe(fi), s.user.Name)
	}
	return fmt.Sprintf("%s (%s) is not %s by %s", where, d.describe(fi), verb(want), s.user.Name)
}

// describe gives a file's mode and owners as ls does: "-rw-r----- root:ejabberd".
func (d *doctor) describe(fi FileInfo) string {
	return fmt.Sprintf("%s %s:%s", fi.Mode.String(), d.sys.UserName(fi.UID), d.sys.GroupName(fi.GID))
}

func verb(want int) string {
	var v []string
	if want&access.Read != 0 {
		v = append(v, "readable")
	}
	if want&access.Write != 0 {
		v = append(v, "writable")
	}
	if want&access.Exec != 0 {
		v = append(v, "executable")
	}
	return strings.Join(v, " and ")
}

// trustedBy says why tokenauthd, run as user u, would refuse to read a
// configuration or secret file (writable by others than its owner, or
// owned by neither root nor u), or "" if it would not.
func trustedBy(fi FileInfo, u User) string {
	if perm := fi.Mode.Perm(); perm&0o022 != 0 {
		return fmt.Sprintf("writable by others than its owner (mode %04o), which tokenauthd refuses", perm)
	}
	if fi.UID != 0 && fi.UID != u.UID && fi.UID >= 0 {
		return fmt.Sprintf("owned by user %d, neither root nor %s, which tokenauthd refuses", fi.UID, u.Name)
	}
	return ""
}

// unitSettings is what doctor reads of a systemd unit.
type unitSettings struct {
	name                string
	files               []string
	user                string
	supplementaryGroups []string
	privateTmp          bool
	protectHome         string // "no", "yes", "read-only", "tmpfs"
	execStart           string // the last ExecStart= command line
	environment         []string
}

// parseUnit reads the [Service] settings doctor needs from a unit's files,
// later assignments replacing earlier ones, an empty one resetting a list.
func parseUnit(name string, files []UnitFile) unitSettings {
	u := unitSettings{name: name, protectHome: "no"}
	for _, f := range files {
		u.files = append(u.files, f.Path)
		section := ""
		// A backslash at the end of a line continues it.
		text := strings.ReplaceAll(f.Text, "\\\n", " ")
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' || line[0] == ';' {
				continue
			}
			if line[0] == '[' {
				section = strings.Trim(line, "[]")
				continue
			}
			key, value, ok := strings.Cut(line, "=")
			if !ok || section != "Service" {
				continue
			}
			key, value = strings.TrimSpace(key), strings.TrimSpace(value)
			switch key {
			case "User":
				u.user = value
			case "ExecStart":
				if value != "" {
					u.execStart = value
				}
			case "Environment":
				if value == "" {
					u.environment = nil
				}
				u.environment = append(u.environment, shellWords(value)...)
			case "SupplementaryGroups":
				if value == "" {
					u.supplementaryGroups = nil
				}
				u.supplementaryGroups = append(u.supplementaryGroups, strings.Fields(value)...)
			case "PrivateTmp":
				u.privateTmp = unitBool(value)
			case "ProtectHome":
				switch {
				case value == "read-only" || value == "tmpfs":
					u.protectHome = value
				case unitBool(value):
					u.protectHome = "yes"
				default:
					u.protectHome = "no"
				}
			}
		}
	}
	return u
}

// configPath is the tokenauthd configuration a unit's ExecStart= reads:
// its -config, else TOKENAUTHD_CONFIG from Environment=, else the default.
func (u unitSettings) configPath(def string) string {
	words := shellWords(strings.TrimLeft(u.execStart, "@-:+!"))
	var cmd helperCmd
	if len(words) > 1 {
		args := words[1:]
		if args[0] == "serve" {
			args = args[1:]
		}
		cmd.readArgs(args)
	}
	if cmd.config != "" {
		return cmd.config
	}
	for _, e := range u.environment {
		if v, ok := strings.CutPrefix(e, "TOKENAUTHD_CONFIG="); ok && v != "" {
			return v
		}
	}
	return def
}

// unitBool is systemd's reading of a boolean.
func unitBool(v string) bool {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true
	}
	return false
}

// under says whether path is dir or inside it.
func under(path, dir string) bool {
	path = filepath.Clean(path)
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// hides says why the unit's sandbox keeps its processes from the file at
// path, or "" if it does not.
func (u unitSettings) hides(path string) string {
	if !filepath.IsAbs(path) {
		return ""
	}
	if u.privateTmp && (under(path, "/tmp") || under(path, "/var/tmp")) {
		return fmt.Sprintf("%s has PrivateTmp=true: its processes see a /tmp and /var/tmp of their own, without %s", u.name, path)
	}
	if u.protectHome == "yes" || u.protectHome == "tmpfs" {
		for _, dir := range []string{"/home", "/root", "/run/user"} {
			if under(path, dir) {
				return fmt.Sprintf("%s has ProtectHome=%s: its processes cannot see %s", u.name, u.protectHome, dir)
			}
		}
	}
	return ""
}

// isSocket says whether a file is a Unix socket.
func isSocket(fi FileInfo) bool { return fi.Mode.Type() == fs.ModeSocket }
