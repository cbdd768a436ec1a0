package access

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// Walk goes where the kernel goes: down from /, through each symbolic
// link (absolute or relative, .. included) to what it names.
func TestWalk(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"etc/prosody/conf.avail", "etc/prosody/conf.d", "other"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/prosody/conf.avail/h.cfg.lua"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"etc/prosody/conf.d/h.cfg.lua": "../conf.avail/h.cfg.lua",
		"other/abs":                    filepath.Join(dir, "etc/prosody/conf.d/h.cfg.lua"),
		"other/loop":                   "loop",
		"other/gone":                   "nowhere/x",
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	// chain is / and every directory down to dir; in names files in dir.
	chain := []string{"/"}
	for cur, p := "/", strings.Split(strings.Trim(dir, "/"), "/"); len(p) > 0; p = p[1:] {
		cur = filepath.Join(cur, p[0])
		chain = append(chain, cur)
	}
	in := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, filepath.Join(dir, n))
		}
		return out
	}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	avail := in("etc", "etc/prosody", "etc/prosody/conf.avail", "etc/prosody/conf.avail/h.cfg.lua")
	linked := in("etc", "etc/prosody", "etc/prosody/conf.d", "etc/prosody/conf.d/h.cfg.lua", "etc/prosody/conf.avail", "etc/prosody/conf.avail/h.cfg.lua")
	tests := []struct {
		path string
		want []string
		err  bool
	}{
		{"etc/prosody/conf.avail/h.cfg.lua", cat(chain, avail), false},
		// A relative link, with .., goes on from its directory.
		{"etc/prosody/conf.d/h.cfg.lua", cat(chain, linked), false},
		// An absolute link starts again from /.
		{"other/abs", cat(chain, in("other", "other/abs"), chain[1:], linked), false},
		{"other/loop", nil, true},
		{"other/gone", cat(chain, in("other", "other/gone")), true},
	}
	for _, tt := range tests {
		steps, err := Walk(filepath.Join(dir, tt.path), Lstat, os.Readlink)
		if (err != nil) != tt.err {
			t.Errorf("Walk(%s): error %v", tt.path, err)
		}
		if tt.want == nil {
			continue
		}
		var got []string
		for _, s := range steps {
			got = append(got, s.Path)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Walk(%s) =\n%q\nwant\n%q", tt.path, got, tt.want)
		}
	}
}

func TestWritersOf(t *testing.T) {
	const nobody = 65534
	step := func(mode fs.FileMode, uid, gid int) Step {
		return Step{Path: "/x", Info: FileInfo{Mode: mode, UID: uid, GID: gid}}
	}
	rootFile := step(0o644, 0, 0)
	none := Writers{Owner: -1, Group: -1}
	tests := []struct {
		name       string
		s          Step
		next       *Step
		uids, gids []int
		want       Writers
	}{
		{"root's, 0644", step(0o644, 0, 0), nil, nil, nil, none},
		{"root's, group prosody, 0640", step(0o640, 0, 106), nil, nil, nil, none},
		{"root's group may write", step(0o664, 0, 0), nil, nil, nil, none},
		{"owned by nobody", step(0o644, nobody, nobody), nil, nil, nil, Writers{Owner: nobody, Group: -1}},
		{"group prosody may write", step(0o664, 0, 106), nil, nil, nil, Writers{Owner: -1, Group: 106}},
		{"everyone may write", step(0o666, 0, 0), nil, nil, nil, Writers{Owner: -1, Group: -1, Everyone: true}},
		{"all three", step(fs.ModeDir|0o777, nobody, 106), nil, nil, nil, Writers{Owner: nobody, Group: 106, Everyone: true}},
		// The server's own account, when the check trusts it.
		{"ejabberd's, trusted", step(0o600, 105, 108), nil, []int{105}, []int{108}, none},
		{"ejabberd's group may write, trusted", step(0o660, 105, 108), nil, []int{105}, []int{108}, none},
		// A sticky directory (/tmp) protects a root's file in it, not
		// another's.
		{"sticky, root's file next", step(fs.ModeDir|fs.ModeSticky|0o777, 0, 0), &rootFile, nil, nil, none},
		{"sticky, nobody's file next", step(fs.ModeDir|fs.ModeSticky|0o777, 0, 0), &Step{Info: FileInfo{Mode: 0o644, UID: nobody}}, nil, nil,
			Writers{Owner: -1, Group: -1, Everyone: true}},
		{"sticky at the end", step(fs.ModeDir|fs.ModeSticky|0o777, 0, 0), nil, nil, nil, Writers{Owner: -1, Group: -1, Everyone: true}},
		// A link cannot be changed: its directory counts.
		{"a link", step(fs.ModeSymlink|0o777, nobody, nobody), nil, nil, nil, none},
	}
	for _, tt := range tests {
		got := WritersOf(tt.s, tt.next, tt.uids, tt.gids)
		if got != tt.want || got.Any() != (tt.want != none) {
			t.Errorf("%s: WritersOf = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
