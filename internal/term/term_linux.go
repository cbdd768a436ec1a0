package term

import (
	"os"

	"golang.org/x/sys/unix"
)

// Prepare readies a terminal stdin for the protocol (Prosody's
// mod_auth_external runs helpers on a pseudo-terminal, with the terminal's
// defaults). It turns off echo, which would send each request back where
// it is read as the reply, and with it everything else by which the
// terminal would rewrite or act on request bytes: line editing (^U, ^W,
// DEL, ^D), signal characters (^C, ^\, ^Z), literal-next (^V), flow
// control (^S, ^Q) and CR-to-NL translation, which would split a line at a
// CR inside a password and desynchronise every later reply. Bytes then
// reach the reader as sent; the reader ends lines at "\n" and drops a "\r"
// before it. Output is left alone: the terminal turns "1\n" into "1\r\n",
// which the module strips. It does nothing if f is not a terminal.
func Prepare(f *os.File) {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return
	}
	t.Lflag &^= unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Iflag &^= unix.ICRNL | unix.INLCR | unix.IGNCR | unix.IXON | unix.IXOFF | unix.ISTRIP | unix.BRKINT
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	_ = unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	// Control, not Fd: Fd would put a non-blocking file in blocking mode.
	terr := rc.Control(func(fd uintptr) {
		_, err = unix.IoctlGetTermios(int(fd), unix.TCGETS)
	})
	return terr == nil && err == nil
}

// DetachStderr points file descriptor 2 at /dev/null, so that nothing
// written there any more (the Go runtime's report of a panic or a fatal
// error, a library writing to os.Stderr) reaches the file it shared with
// stdout. It is called only once the logger has what it writes to.
func DetachStderr() error {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	return unix.Dup3(int(null.Fd()), 2, 0)
}
