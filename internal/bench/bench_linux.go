package bench

import (
	"os"

	"golang.org/x/sys/unix"
)

// peerPID returns the process at the other end of a Unix socket, or 0.
func peerPID(f *os.File) int {
	cred, err := unix.GetsockoptUcred(int(f.Fd()), unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0
	}
	return int(cred.Pid)
}
