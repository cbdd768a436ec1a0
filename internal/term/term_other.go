//go:build !linux

package term

import "os"

// Prepare does nothing where terminals are not handled.
func Prepare(*os.File) {}

// IsTerminal reports whether f may be a terminal: any character device,
// which errs on the side of keeping stderr off stdout.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// DetachStderr does nothing where terminals are not handled: the logger
// still writes elsewhere, but a panic's report would reach stderr.
func DetachStderr() error { return nil }
