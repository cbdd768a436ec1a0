package relay

import (
	"os"
	"syscall"
	"time"
)

// blockingConn is a Unix stream socket in blocking mode: the relay has one
// request in flight and nothing else to do meanwhile, so its thread may as
// well wait in the kernel, which wakes it directly when the reply comes,
// instead of parking on Go's network poller (one more wake-up and thread
// hand-off per request: about half of the relay's round trip).
// Deadlines are the socket's receive and send timeouts.
type blockingConn struct {
	f  *os.File
	fd int
}

// dialRelay connects to the Unix socket at path by the deadline.
func dialRelay(path string, deadline time.Time) (relayConn, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	c := &blockingConn{fd: fd}
	// A connect to a listener whose backlog is full waits up to the send
	// timeout.
	if err := c.SetDeadline(deadline); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	for {
		err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, &os.PathError{Op: "connect", Path: path, Err: err}
	}
	c.f = os.NewFile(uintptr(fd), path)
	return c, nil
}

// SyscallConn gives protocol.Conn the socket, to see what waits unread
// on it.
func (c *blockingConn) SyscallConn() (syscall.RawConn, error) { return c.f.SyscallConn() }

func (c *blockingConn) Read(p []byte) (int, error)  { return c.f.Read(p) }
func (c *blockingConn) Write(p []byte) (int, error) { return c.f.Write(p) }
func (c *blockingConn) Close() error {
	if c.f == nil {
		return syscall.Close(c.fd)
	}
	return c.f.Close()
}

// SetDeadline makes reads and writes fail once t has passed.
func (c *blockingConn) SetDeadline(t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return os.ErrDeadlineExceeded
	}
	// SO_RCVTIMEO rounds to the kernel's tick; a zero timeval would mean
	// "never".
	tv := syscall.NsecToTimeval(max(d, time.Millisecond).Nanoseconds())
	if err := syscall.SetsockoptTimeval(c.fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	if err := syscall.SetsockoptTimeval(c.fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return nil
}
