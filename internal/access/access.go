// Package access says who may do what to a file, as the kernel decides by
// its permission bits, for the checks that find a setup serve or an XMPP
// server would trip on (check-config, doctor): who may read or run it
// (Allowed, Denied), and who can change it or a directory or link on the
// way to it (Walk, WritersOf). It reads accounts and file metadata; ACLs
// and AppArmor are not read.
//
// It must never know tokens, configurations or the wire.
package access

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Permission bits asked of a file.
const (
	Read  = 4
	Write = 2
	Exec  = 1 // for a directory: search
)

// FileInfo is what the permission rules need of a file's metadata.
type FileInfo struct {
	Mode     fs.FileMode
	UID, GID int
}

// User is an account and every group it is in.
type User struct {
	Name string
	UID  int
	GID  int   // its primary group
	GIDs []int // every group, the primary one included
}

// Group is a group.
type Group struct {
	Name string
	GID  int
}

// Allowed applies the kernel's permission rules: root may read and write
// anything and execute what has any execute bit (and search any
// directory); others get the owner's, else the group's, else everyone's
// bits.
func Allowed(u User, fi FileInfo, want int) bool {
	perm := int(fi.Mode.Perm())
	if u.UID == 0 {
		return want&Exec == 0 || fi.Mode.IsDir() || perm&0o111 != 0
	}
	var bits int
	switch {
	case fi.UID == u.UID:
		bits = perm >> 6
	case slices.Contains(u.GIDs, fi.GID):
		bits = perm >> 3
	default:
		bits = perm
	}
	return bits&7&want == want
}

// Stat returns path's metadata (following symbolic links).
func Stat(path string) (FileInfo, error) {
	return fileInfo(os.Stat(path))
}

// fileInfo is what the kernel says of a file: its mode and owners (-1
// where it does not say).
func fileInfo(st os.FileInfo, err error) (FileInfo, error) {
	if err != nil {
		return FileInfo{}, err
	}
	fi := FileInfo{Mode: st.Mode(), UID: -1, GID: -1}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		fi.UID, fi.GID = int(sys.Uid), int(sys.Gid)
	}
	return fi, nil
}

// LookupUser finds the account name, with every group it is in.
func LookupUser(name string) (User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return User{}, err
	}
	return fromOS(u)
}

// CurrentUser is the account the process runs as.
func CurrentUser() (User, error) {
	u, err := user.Current()
	if err != nil {
		return User{}, err
	}
	return fromOS(u)
}

func fromOS(u *user.User) (User, error) {
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return User{}, err
	}
	out := User{Name: u.Username, UID: uid, GID: gid, GIDs: []int{gid}}
	ids, err := u.GroupIds()
	if err != nil {
		return User{}, err
	}
	for _, s := range ids {
		if g, err := strconv.Atoi(s); err == nil && !slices.Contains(out.GIDs, g) {
			out.GIDs = append(out.GIDs, g)
		}
	}
	return out, nil
}

// LookupGroup finds the group name, or numbered name.
func LookupGroup(name string) (Group, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if _, nerr := strconv.Atoi(name); nerr != nil {
			return Group{}, err
		}
		if g, err = user.LookupGroupId(name); err != nil {
			return Group{}, err
		}
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return Group{}, err
	}
	return Group{Name: g.Name, GID: gid}, nil
}

// Denied walks to the file at path as the kernel does, with stat reading
// metadata: every directory from / down must let u search it, and the file
// must allow want. It returns where u is stopped ("" if nowhere: fi is then
// the file's), with that place's metadata, or stat's error there (a file
// or directory that does not exist).
func Denied(u User, path string, want int, stat func(string) (FileInfo, error)) (where string, fi FileInfo, err error) {
	path = filepath.Clean(path)
	dirs, cur := []string{"/"}, "/"
	for _, part := range strings.Split(strings.Trim(filepath.Dir(path), "/"), "/") {
		if part != "" {
			cur = filepath.Join(cur, part)
			dirs = append(dirs, cur)
		}
	}
	for _, d := range dirs {
		if fi, err = stat(d); err != nil {
			return d, fi, err
		}
		if !Allowed(u, fi, Exec) {
			return d, fi, nil
		}
	}
	if fi, err = stat(path); err != nil {
		return path, fi, err
	}
	if !Allowed(u, fi, want) {
		return path, fi, nil
	}
	return "", fi, nil
}

// Lstat returns path's metadata, of a symbolic link itself rather than
// what it names.
func Lstat(path string) (FileInfo, error) {
	return fileInfo(os.Lstat(path))
}

// Step is one file the kernel goes through on the way to another: a
// directory, a symbolic link, or the file at the end.
type Step struct {
	Path string
	Info FileInfo
}

// maxLinks is how many symbolic links Walk follows, as Linux does.
const maxLinks = 40

// ErrLinks is Walk's error for a path through too many symbolic links.
var ErrLinks = errors.New("access: too many levels of symbolic links")

// Walk returns, in order, every file the kernel goes through to reach the
// absolute path: / and each directory down from it, each symbolic link met
// (then the walk goes on through what it names) and the file at the end.
// Whoever can change one of them can change what path is. lstat must not
// follow links; readlink reads one. On an error (a missing file, too many
// links) Walk returns the steps before it.
func Walk(path string, lstat func(string) (FileInfo, error), readlink func(string) (string, error)) ([]Step, error) {
	root, err := lstat("/")
	if err != nil {
		return nil, err
	}
	steps := []Step{{"/", root}}
	todo := strings.Split(filepath.Clean("/"+path), "/")
	cur, links := "/", 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := lstat(next)
		if err != nil {
			return steps, err
		}
		steps = append(steps, Step{next, fi})
		if fi.Mode.Type() != fs.ModeSymlink {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return steps, ErrLinks
		}
		target, err := readlink(next)
		if err != nil {
			return steps, err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return steps, nil
}

// Writers is who, besides the accounts a check trusts, can change a file.
type Writers struct {
	Owner    int  // the owner's uid (who may change the mode), or -1
	Group    int  // the group's gid, if it may write, or -1
	Everyone bool // every user may write
}

// Any says whether anyone untrusted can change the file.
func (w Writers) Any() bool { return w.Owner >= 0 || w.Group >= 0 || w.Everyone }

// WritersOf says who, besides root and the trusted uids and gids, can
// change the file a step is: its owner, who may change its mode; its
// group if it may write; every user if everyone may. A directory whose
// sticky bit keeps others from replacing what they do not own counts as
// not writable by its group or everyone when next, the file after it on
// the way, belongs to root or a trusted uid. A symbolic link itself
// cannot be changed (its directory is the step that counts): no one.
func WritersOf(s Step, next *Step, uids, gids []int) Writers {
	w := Writers{Owner: -1, Group: -1}
	if s.Info.Mode.Type() == fs.ModeSymlink {
		return w
	}
	trustedUID := func(id int) bool { return id == 0 || slices.Contains(uids, id) }
	trustedGID := func(id int) bool { return id == 0 || slices.Contains(gids, id) }
	perm := s.Info.Mode.Perm()
	sticky := s.Info.Mode.IsDir() && s.Info.Mode&fs.ModeSticky != 0 && next != nil && trustedUID(next.Info.UID)
	if !trustedUID(s.Info.UID) {
		w.Owner = s.Info.UID
	}
	if perm&0o020 != 0 && !trustedGID(s.Info.GID) && !sticky {
		w.Group = s.Info.GID
	}
	w.Everyone = perm&0o002 != 0 && !sticky
	return w
}
