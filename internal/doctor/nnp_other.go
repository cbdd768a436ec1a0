//go:build !linux

package doctor

import (
	"errors"
	"os/exec"
)

// startNoNewPrivs refuses: only Linux has no_new_privs, and doctor runs
// no configuration's code without it.
func startNoNewPrivs(*exec.Cmd) error {
	return errors.New("cannot run it with no new privileges on this system")
}
