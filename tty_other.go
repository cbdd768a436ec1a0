//go:build !linux

package main

import "os"

// prepareTerminal does nothing where terminals are not handled.
func prepareTerminal(*os.File) {}
