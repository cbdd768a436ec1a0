//go:build !linux

package main

import "os"

// prepareTerminal does nothing where terminals are not handled.
func prepareTerminal(*os.File) {}

// isTerminal reports whether f may be a terminal: any character device,
// which errs on the side of keeping stderr off stdout.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// detachStderr does nothing where terminals are not handled: the logger
// still writes elsewhere, but a panic's report would reach stderr.
func detachStderr() error { return nil }
