//go:build !linux

package doctor

import "errors"

func kernelClock() (ClockStatus, error) {
	return ClockStatus{}, errors.New("the clock's synchronisation is read only on Linux")
}
