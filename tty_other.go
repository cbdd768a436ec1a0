//go:build !linux

package main

import "os"

// disableEcho does nothing where terminals are not handled.
func disableEcho(*os.File) {}
