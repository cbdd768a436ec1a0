package doctor

import (
	"time"

	"golang.org/x/sys/unix"
)

// kernelClock asks the kernel (adjtimex, changing nothing) whether an NTP
// client keeps its clock synchronised: the flag STA_UNSYNC and the
// kernel's bound on the error.
func kernelClock() (ClockStatus, error) {
	var t unix.Timex // Modes 0: read only
	state, err := unix.Adjtimex(&t)
	if err != nil {
		return ClockStatus{}, err
	}
	return ClockStatus{
		Synchronised: t.Status&unix.STA_UNSYNC == 0 && state != unix.TIME_ERROR,
		MaxError:     time.Duration(t.Maxerror) * time.Microsecond,
	}, nil
}
