package doctor

import (
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// startNoNewPrivs starts cmd with no_new_privs set, so that neither it nor
// anything it runs gains privileges through a set-user-ID program or file
// capabilities. The flag belongs to a thread and is inherited at fork: it
// is set on a thread of its own that starts cmd, and that thread is then
// thrown away with its goroutine (still locked to it), so that doctor's
// other threads are left as they were.
func startNoNewPrivs(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Not unlocked: the runtime ends the thread with the goroutine.
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			errc <- err
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}
