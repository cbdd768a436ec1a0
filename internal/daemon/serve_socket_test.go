package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// chgrp gives a socket to the group, and refuses a path that names
// anything else, a symlink above all, leaving its target as it was.
func TestChgrpNoSymlink(t *testing.T) {
	gid := otherGroup(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "d.sock")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := chgrp(link, fmt.Sprint(gid)); err == nil {
		t.Error("chgrp of a symlink succeeded")
	}
	if err := chgrp(target, fmt.Sprint(gid)); err == nil {
		t.Error("chgrp of a regular file succeeded")
	}
	if g := fileGid(t, target); g == gid {
		t.Errorf("the symlink's target was given to group %d", gid)
	}
	sock := filepath.Join(dir, "real.sock")
	l, err := bindUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := chgrp(sock, fmt.Sprint(gid)); err != nil || fileGid(t, sock) != gid {
		t.Errorf("chgrp of a socket: %v, group %d, want %d", err, fileGid(t, sock), gid)
	}
}

// otherGroup returns a group the test may give its files to other than
// the one they get: any, as root; else a supplementary group, if any.
func otherGroup(t *testing.T) int {
	t.Helper()
	if os.Geteuid() == 0 {
		return 4242
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g != os.Getegid() {
			return g
		}
	}
	t.Skip("needs root or a supplementary group")
	return 0
}

// fileGid returns the group of path itself (not of a symlink's target).
func fileGid(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Gid)
}
