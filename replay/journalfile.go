package replay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Whoever may write a journal, or the directory it is in, may undo what
// it remembers: empty it, swap in another, or point its lock where the
// daemon should not write. So the journal's files and every directory on
// the way to them are held to the rule the configuration follows (as
// sshd's StrictModes): owned by root or by the journal's user, written by
// their owner alone. Files are opened without following symbolic links,
// and checked once opened, not before.

// owner returns the user, besides root, the journal's files may belong to.
func (o JournalOptions) owner() int {
	if o.Owner != nil {
		return *o.Owner
	}
	return os.Geteuid()
}

// CheckJournal reports, with an error naming the file or directory, what
// makes OpenJournal refuse the journal at path for the user owner (root
// is always allowed): a directory on the way to it (its own, or one
// above, as written or once symbolic links are resolved) that others
// than its owner may write, or that belongs to neither root nor owner
// (a sticky directory such as /tmp may be written by all, except the
// journal's own); or a journal, previous generation (path.old), lock
// (path.lock), or seen users' file and its lock (path.seen,
// path.seen.lock) that is not a regular file of root or owner that others
// may not write. Files that do not exist yet are no error; nor is a
// directory that does not exist (OpenJournal's own error names it), but
// the directories above it are checked.
func CheckJournal(path string, owner int) error {
	if err := checkJournalDirs(filepath.Dir(path), owner); err != nil {
		return err
	}
	for _, name := range []string{path, path + ".old", path + ".lock", path + ".seen", path + ".seen.lock"} {
		st, err := os.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			err = checkJournalFile(name, st, owner)
		}
		if err != nil {
			return fmt.Errorf("replay: journal: %w", err)
		}
	}
	return nil
}

// checkJournalDirs checks dir and every directory above it, both on the
// way as written and on the way once symbolic links are resolved: whoever
// may write a directory may rename what it holds.
func checkJournalDirs(dir string, owner int) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("replay: journal: %w", err)
	}
	// A directory not made yet: the ones above it, which decide who may
	// make it.
	own := true
	real, err := filepath.EvalSymlinks(abs)
	for errors.Is(err, fs.ErrNotExist) && abs != filepath.Dir(abs) {
		abs, own = filepath.Dir(abs), false
		real, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return fmt.Errorf("replay: journal: %w", err)
	}
	for _, way := range []string{abs, real} {
		for d := way; ; d = filepath.Dir(d) {
			if err := checkJournalLink(d, owner); err != nil {
				return fmt.Errorf("replay: journal: %w", err)
			}
			st, err := os.Stat(d)
			if err != nil {
				return fmt.Errorf("replay: journal: %w", err)
			}
			if err := checkJournalDir(d, st, owner, own && d == way); err != nil {
				return fmt.Errorf("replay: journal: %w", err)
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return nil
}

// checkJournalLink refuses d if it is a symbolic link of another user than
// root or owner: in a directory where only a file's owner may rename it (a
// sticky one), the link's owner may still point it at another journal.
func checkJournalLink(d string, owner int) error {
	st, err := os.Lstat(d)
	if err != nil || st.Mode()&fs.ModeSymlink == 0 {
		return nil // not a link; os.Stat's error, if any, says the rest
	}
	if uid := fileOwner(st); uid != 0 && uid != owner {
		return fmt.Errorf("%s, a symbolic link on the way to the journal, is owned by user %d, neither root nor the journal's user (%d): whoever owns it can point it at another journal", d, uid, owner)
	}
	return nil
}

// checkJournalDir applies the rule to one directory; own: the journal's
// own, where no sticky bit excuses a write by others.
func checkJournalDir(d string, st fs.FileInfo, owner int, own bool) error {
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", d)
	}
	what := "the directory above it"
	if own {
		what = "its directory"
	}
	if uid := fileOwner(st); uid != 0 && uid != owner {
		return fmt.Errorf("%s, %s, is owned by user %d, neither root nor the journal's user (%d): whoever owns it can replace the journal: chown it", d, what, uid, owner)
	}
	m := st.Mode()
	if m.Perm()&0o022 != 0 && (own || m&fs.ModeSticky == 0) {
		return fmt.Errorf("others than its owner may write %s, %s (mode %04o), and so replace the journal: chmod go-w it", d, what, octalMode(m))
	}
	return nil
}

// checkJournalFile applies the rule to one of the journal's files.
func checkJournalFile(name string, st fs.FileInfo, owner int) error {
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link, not a regular file", name)
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file (%v)", name, st.Mode().Type())
	}
	if uid := fileOwner(st); uid != 0 && uid != owner {
		return fmt.Errorf("%s is owned by user %d, neither root nor the journal's user (%d)", name, uid, owner)
	}
	if p := st.Mode().Perm(); p&0o022 != 0 {
		return fmt.Errorf("others than its owner may write %s (mode %04o): chmod go-w it", name, p)
	}
	return nil
}

// octalMode returns a mode's permission and sticky bits as chmod writes
// them.
func octalMode(m fs.FileMode) uint32 {
	o := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		o |= 0o1000
	}
	return o
}

// fileOwner returns a file's owner, -1 if the system does not say.
func fileOwner(st fs.FileInfo) int {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(sys.Uid)
	}
	return -1
}

// openJournalFile opens one of the journal's files without following a
// symbolic link and without waiting (a FIFO), and refuses it unless it is
// a regular file the rule allows.
func openJournalFile(name string, flag int, owner int) (*os.File, error) {
	f, err := os.OpenFile(name, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%s is a symbolic link, not a regular file", name)
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil {
		err = checkJournalFile(name, st, owner)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ErrJournalExists is CreateJournal's error where a journal is, or was:
// the journal itself, its lock or its previous generation exists.
var ErrJournalExists = errors.New("replay: a journal is, or was, there")

// CreateJournal makes a new journal at path, for the user uid and group
// gid (-1: the process's own), holding only its birth record: made at
// made, before any process used it. The first OpenJournal on it finds no
// loss, and accepts at once what a journal that vanished would make it
// refuse for a time to live. It is for the one moment that is known to
// be a first start: the installation of the journal's directory.
//
// It refuses (ErrJournalExists) where the journal, its lock or its
// previous generation, or the seen users' file or its lock, exists: a
// journal that vanished leaves its lock or its seen users,
// and the loss of one must never be hidden by a new one. It refuses too
// what CheckJournal refuses for uid. On an error it leaves no journal.
func CreateJournal(path string, made time.Time, uid, gid int) error {
	owner := uid
	if owner < 0 {
		owner = os.Geteuid()
	}
	if err := checkJournalDirs(filepath.Dir(path), owner); err != nil {
		return err
	}
	// The seen users' file and its lock outlive a journal lost beside
	// them: they say a journal was there too.
	for _, name := range []string{path, path + ".old", path + ".lock", path + ".seen", path + ".seen.lock"} {
		if _, err := os.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrJournalExists, name)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s", ErrJournalExists, path)
	}
	if err != nil {
		return fmt.Errorf("replay: journal: %w", err)
	}
	rec := journalRecord(birthKey, made.UnixNano())
	err = f.Chown(uid, gid)
	if err == nil {
		_, err = f.Write(append([]byte(journalMagic), rec[:]...))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("replay: journal %s: %w", path, err)
	}
	return nil
}
