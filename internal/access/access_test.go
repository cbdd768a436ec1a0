package access

import (
	"io/fs"
	"testing"
)

func TestAllowed(t *testing.T) {
	ej := User{Name: "ejabberd", UID: 105, GID: 108, GIDs: []int{108, 999}}
	root := User{Name: "root", GIDs: []int{0}}
	tests := []struct {
		u    User
		fi   FileInfo
		want int
		ok   bool
	}{
		{ej, FileInfo{Mode: 0o640, UID: 0, GID: 108}, Read, true},
		{ej, FileInfo{Mode: 0o600, UID: 0, GID: 108}, Read, false},
		{ej, FileInfo{Mode: 0o604, UID: 0, GID: 0}, Read, true},
		// The owner's bits apply to the owner, even if the group's would
		// let it in.
		{ej, FileInfo{Mode: 0o070, UID: 105, GID: 108}, Read, false},
		// The group's apply to a member, even if everyone's would.
		{ej, FileInfo{Mode: 0o607, UID: 0, GID: 999}, Read, false},
		{ej, FileInfo{Mode: fs.ModeSocket | 0o660, UID: 998, GID: 999}, Write, true},
		{ej, FileInfo{Mode: 0o755}, Exec, true},
		{ej, FileInfo{Mode: 0o750}, Exec, false},
		{ej, FileInfo{Mode: fs.ModeDir | 0o711}, Exec, true},
		// Root reads anything, runs only what is executable by someone,
		// and enters any directory.
		{root, FileInfo{Mode: 0o000, UID: 5}, Read | Write, true},
		{root, FileInfo{Mode: 0o644}, Exec, false},
		{root, FileInfo{Mode: 0o744}, Exec, true},
		{root, FileInfo{Mode: fs.ModeDir}, Exec, true},
	}
	for _, tt := range tests {
		if got := Allowed(tt.u, tt.fi, tt.want); got != tt.ok {
			t.Errorf("Allowed(%s, %v, %d) = %v, want %v", tt.u.Name, tt.fi.Mode, tt.want, got, tt.ok)
		}
	}
}

// Denied names where the walk to a file stops: a directory above it that
// the user may not search, the file itself, or nowhere.
func TestDenied(t *testing.T) {
	ej := User{Name: "ejabberd", UID: 105, GID: 108, GIDs: []int{108}}
	tree := map[string]FileInfo{
		"/":                 {Mode: fs.ModeDir | 0o755},
		"/etc":              {Mode: fs.ModeDir | 0o755},
		"/etc/tokenauthd":   {Mode: fs.ModeDir | 0o750, GID: 108},
		"/etc/tokenauthd/c": {Mode: 0o640, GID: 108},
		"/etc/tokenauthd/s": {Mode: 0o600},
		"/root":             {Mode: fs.ModeDir | 0o700},
		"/root/c":           {Mode: 0o644},
	}
	stat := func(p string) (FileInfo, error) {
		if fi, ok := tree[p]; ok {
			return fi, nil
		}
		return FileInfo{}, fs.ErrNotExist
	}
	// Where the walk to each path stops; a place not in the tree does
	// not exist, and stat's error comes with it.
	for path, want := range map[string]string{
		"/etc/tokenauthd/c":    "",
		"/etc/tokenauthd/s":    "/etc/tokenauthd/s",
		"/root/c":              "/root",
		"/etc/none/c":          "/etc/none",
		"/etc/tokenauthd/none": "/etc/tokenauthd/none",
	} {
		_, exists := tree[want]
		where, _, err := Denied(ej, path, Read, stat)
		if where != want || (err != nil) != (want != "" && !exists) {
			t.Errorf("Denied(%s) = %q, %v; want %q", path, where, err, want)
		}
	}
}
