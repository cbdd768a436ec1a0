package doctor

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tokenauthd/tokenauthd/internal/access"
)

// trust is who may write a server's configuration files and the
// directories on the way to them, root aside.
type trust struct {
	server     string // whose configuration: "Prosody", "ejabberd"
	uids, gids []int
}

// prosodyTrust trusts root alone: prosodyctl, run by root, runs
// prosody.cfg.lua and what it includes as root, so whoever else can write
// one of them can become root (Debian: root:prosody, 0640).
var prosodyTrust = trust{server: "Prosody"}

// ejabberdTrust trusts root and ejabberd's own user and group: ejabberdctl
// switches to that user before it reads ejabberd.yml (Debian gives the
// file to it), and the file is data, not code.
func ejabberdTrust(svc *service) trust {
	t := trust{server: "ejabberd"}
	if svc.userErr == "" {
		t.uids, t.gids = []int{svc.user.UID}, []int{svc.user.GID}
	}
	return t
}

// checkWriters reports, as errors, every file and directory on the way to
// a server's configuration file path, and to the files and directories
// read besides, that anyone but root and t's accounts can write: whoever
// can controls the server, and what doctor reads of its configuration.
// Each place is reported once.
func (d *doctor) checkWriters(t trust, path string, read loaded) {
	type target struct{ path, kind string }
	targets := []target{{path, "file"}}
	for _, f := range read.files {
		targets = append(targets, target{f, "file"})
	}
	for _, dir := range read.dirs {
		targets = append(targets, target{dir, "dir"})
	}
	for _, tg := range targets {
		// A relative path is the working directory's, as the server's
		// own reading of it is.
		abs, err := filepath.Abs(tg.path)
		if err != nil {
			d.add(Finding{Severity: Note, File: tg.path, Message: "cannot tell who can write it: " + errText(err)})
			continue
		}
		tg.path = abs
		steps, err := access.Walk(tg.path, d.sys.Lstat, d.sys.Readlink)
		for i, s := range steps {
			var next *access.Step
			if i+1 < len(steps) {
				next = &steps[i+1]
			}
			w := access.WritersOf(s, next, t.uids, t.gids)
			if !w.Any() || d.writable[s.Path] {
				continue
			}
			d.writable[s.Path] = true
			d.add(Finding{Severity: Error, File: s.Path, Message: d.writableMessage(t, s, tg.path, w), Fix: writableFix(s.Path, w)})
		}
		// A file the loader looked for and did not find is not one.
		if err != nil && !isNotExist(err) {
			d.add(Finding{Severity: Note, File: tg.path, Message: fmt.Sprintf("cannot tell who can write it and the directories on the way to it: %s", errText(err))})
		}
	}
}

// writableMessage says who can write a step on the way to a server's
// configuration file (or directory) target.
func (d *doctor) writableMessage(t trust, s access.Step, target string, w access.Writers) string {
	var who []string
	if w.Owner >= 0 {
		who = append(who, d.sys.UserName(w.Owner)+" (its owner)")
	}
	if w.Group >= 0 {
		who = append(who, "the group "+d.sys.GroupName(w.Group))
	}
	if w.Everyone {
		who = append(who, "every user")
	}
	what := t.server + "'s configuration"
	if s.Path != target {
		what = "on the way to " + t.server + "'s configuration " + target
	}
	return fmt.Sprintf("%s: %s can change it, and whoever can controls %s (and what doctor reads of it)",
		what, strings.Join(who, ", "), t.server)
}

// writableFix gives a place to root (if another user owns it) and takes
// the write bits from its group and everyone.
func writableFix(path string, w access.Writers) string {
	fix := sh("chmod", "go-w", path)
	if w.Owner >= 0 {
		fix = sh("chown", "root", path) + " && " + fix
	}
	return fix
}
