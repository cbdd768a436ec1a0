package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// disableEcho turns off a terminal's echo (Prosody runs helpers on a
// pseudo-terminal). It does nothing if f is not a terminal.
func disableEcho(f *os.File) {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return
	}
	t.Lflag &^= unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHONL
	_ = unix.IoctlSetTermios(fd, unix.TCSETS, t)
}
