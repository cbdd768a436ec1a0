//go:build !linux

package relay

import (
	"net"
	"time"
)

// dialRelay connects to the Unix socket at path by the deadline.
func dialRelay(path string, deadline time.Time) (relayConn, error) {
	d := net.Dialer{Deadline: deadline}
	return d.Dial("unix", path)
}
