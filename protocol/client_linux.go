package protocol

import "golang.org/x/sys/unix"

// unread returns how many bytes wait to be read on the file descriptor (a
// socket's or a pipe's: Linux's FIONREAD, which x/sys names TIOCINQ), 0 if
// it cannot tell.
func unread(fd uintptr) int {
	n, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ)
	if err != nil {
		return 0
	}
	return n
}
