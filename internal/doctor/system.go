package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/access"
)

// System is everything doctor asks of the machine.
type System interface {
	// ReadFile reads a file of at most max bytes (a longer one is an
	// error).
	ReadFile(path string, max int64) ([]byte, error)
	// Stat describes a file, following symbolic links; Lstat describes a
	// symbolic link itself, and Readlink reads what it names.
	Stat(path string) (FileInfo, error)
	Lstat(path string) (FileInfo, error)
	Readlink(path string) (string, error)
	// LookupUser and LookupGroup find an account by name, UserName and
	// GroupName name one by number.
	LookupUser(name string) (User, error)
	LookupGroup(name string) (Group, error)
	UserName(uid int) string
	GroupName(gid int) string
	// UnitFiles returns a systemd unit's file and its drop-ins, in the
	// order systemd applies them; none if the unit is not installed.
	UnitFiles(unit string) ([]UnitFile, error)
	// NumCPU is the number of processors ejabberd sees (the default of
	// extauth_pool_size).
	NumCPU() int
	// Clock tells whether the kernel's clock is synchronised.
	Clock() (ClockStatus, error)
	// DialUnix connects to a Unix stream socket.
	DialUnix(ctx context.Context, path string) (net.Conn, error)
	// Run runs a program as the user as (never root), with no new
	// privileges, no environment, from /, and returns at most maxOut
	// bytes of its standard output; its standard error is cut at maxOut
	// too, and its exit status is in err. A doctor that is not root runs
	// it only if as is doctor's own user.
	Run(ctx context.Context, prog string, args []string, as User, maxOut int) (stdout, stderr []byte, err error)
}

// FileInfo is access.FileInfo.
type FileInfo = access.FileInfo

// User is access.User.
type User = access.User

// Group is access.Group.
type Group = access.Group

// UnitFile is one file of a systemd unit.
type UnitFile struct {
	Path string
	Text string
}

// ClockStatus is the kernel's view of its clock.
type ClockStatus struct {
	Synchronised bool
	MaxError     time.Duration // the kernel's bound on the clock's error
}

// OS returns the machine doctor runs on.
func OS() System { return osSystem{} }

type osSystem struct{}

func (osSystem) ReadFile(path string, max int64) ([]byte, error) {
	// O_NONBLOCK: a FIFO must not make doctor wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return b, nil
}

func (osSystem) Stat(path string) (FileInfo, error) { return access.Stat(path) }

func (osSystem) Lstat(path string) (FileInfo, error) { return access.Lstat(path) }

func (osSystem) Readlink(path string) (string, error) { return os.Readlink(path) }

func (osSystem) LookupUser(name string) (User, error) { return access.LookupUser(name) }

func (osSystem) LookupGroup(name string) (Group, error) { return access.LookupGroup(name) }

func (osSystem) UserName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

func (osSystem) GroupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}

// unitDirs are where systemd looks for units, the strongest first.
var unitDirs = []string{
	"/etc/systemd/system",
	"/run/systemd/system",
	"/usr/local/lib/systemd/system",
	"/usr/lib/systemd/system",
	"/lib/systemd/system",
}

// maxUnitFile bounds a unit file or drop-in.
const maxUnitFile = 256 << 10

func (s osSystem) UnitFiles(unit string) ([]UnitFile, error) {
	var files []UnitFile
	for _, dir := range unitDirs {
		p := filepath.Join(dir, unit)
		if t, err := os.Readlink(p); err == nil && t == "/dev/null" {
			return nil, nil // masked
		}
		b, err := s.ReadFile(p, maxUnitFile)
		if err == nil {
			files = append(files, UnitFile{Path: p, Text: string(b)})
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if len(files) == 0 {
		return nil, nil
	}
	// Drop-ins: by file name, a stronger directory's file replacing a
	// weaker one's of the same name.
	dropins := map[string]string{}
	for i := len(unitDirs) - 1; i >= 0; i-- {
		d := filepath.Join(unitDirs[i], unit+".d")
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".conf") {
				dropins[e.Name()] = filepath.Join(d, e.Name())
			}
		}
	}
	names := make([]string, 0, len(dropins))
	for n := range dropins {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		b, err := s.ReadFile(dropins[n], maxUnitFile)
		if err != nil {
			return nil, err
		}
		files = append(files, UnitFile{Path: dropins[n], Text: string(b)})
	}
	return files, nil
}

func (osSystem) NumCPU() int { return runtime.NumCPU() }

func (osSystem) Clock() (ClockStatus, error) { return kernelClock() }

func (osSystem) DialUnix(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

func (osSystem) Run(ctx context.Context, prog string, args []string, as User, maxOut int) ([]byte, []byte, error) {
	cred, err := credential(as, os.Getuid())
	if err != nil {
		return nil, nil, err
	}
	stdout, stderr := &capped{max: maxOut}, &capped{max: maxOut}
	// In a PID namespace of its own when doctor is root, so that nothing
	// it starts outlives it, not even what leaves its process group; where
	// the kernel refuses one (a container), without.
	cmd := runCmd(ctx, prog, args, cred, stdout, stderr, cred != nil)
	err = startNoNewPrivs(cmd)
	if cred != nil && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC)) {
		stdout.Reset()
		stderr.Reset()
		cmd = runCmd(ctx, prog, args, cred, stdout, stderr, false)
		err = startNoNewPrivs(cmd)
	}
	if err != nil {
		return nil, nil, err
	}
	err = cmd.Wait()
	if err == nil && stdout.over {
		err = fmt.Errorf("%s wrote more than %d bytes", prog, maxOut)
	}
	return stdout.Bytes(), stderr.Bytes(), err
}

// runCmd prepares a program as Run runs it.
func runCmd(ctx context.Context, prog string, args []string, cred *syscall.Credential, stdout, stderr io.Writer, newPID bool) *exec.Cmd {
	cmd := exec.CommandContext(ctx, prog, args...)
	// From /, which its user cannot write, with no environment at all:
	// nothing of the directory or the environment doctor runs in
	// (LUA_INIT, LUA_PATH...) is run.
	cmd.Dir, cmd.Env = "/", []string{}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, stdout, stderr
	// As its user, with that user's groups alone; in its own process
	// group, so that a timeout ends it and whatever it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if newPID {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	return cmd
}

// credential is how a process of uid self runs a program as the user as:
// root switches to as, with as's groups alone; another user runs it only
// as itself. No one runs it as root.
func credential(as User, self int) (*syscall.Credential, error) {
	switch {
	case as.UID <= 0 || as.GID < 0:
		return nil, fmt.Errorf("will not run it as %s (uid %d): as root, or as no known user", as.Name, as.UID)
	case self == as.UID:
		return nil, nil
	case self != 0:
		return nil, fmt.Errorf("doctor runs as uid %d, and only root can run it as %s: run doctor as root", self, as.Name)
	}
	groups := make([]uint32, 0, len(as.GIDs))
	for _, g := range as.GIDs {
		if g >= 0 {
			groups = append(groups, uint32(g))
		}
	}
	return &syscall.Credential{Uid: uint32(as.UID), Gid: uint32(as.GID), Groups: groups}, nil
}

// capped keeps the first max bytes written to it and drops the rest.
type capped struct {
	bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room < len(p) {
		c.over = true
		c.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.Buffer.Write(p)
}

// isNotExist says whether err means the file is not there.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// errText is an error's text without the path a *fs.PathError repeats.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
