package protocol

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// DefaultClientTimeout is how long the XMPP server's side waits for an
// answer by default: the relay's (tokenauthd connect) and the Prosody
// module's (tokenauthd_timeout), whose default a test ties to this one.
// It is far under ejabberd's 30 s and under mod_auth_external's 5 s.
const DefaultClientTimeout = 2 * time.Second

// AppendRequest appends req to b, framed in mode: a 2-byte length and the
// body for Ejabberd (and Auto, as Reply answers it), the body and '\n' for
// Generic. The body is req.AppendBody's, which ParseRequest parses back
// to req exactly; AppendRequest refuses, with a *ProtocolError, a request
// for which it would not: an unknown command, a ':' in the user or the
// server, a password for a command that has none. It refuses too what the
// framing cannot carry (see AppendFrame). On an error b is returned as it
// was. It allocates only if b must grow.
func AppendRequest(b []byte, mode Mode, req Request) ([]byte, error) {
	n, ok := fields[req.Command]
	switch {
	case !ok:
		return b, protoErr("unknown command (%d bytes)", len(req.Command))
	case strings.IndexByte(req.User, ':') >= 0:
		return b, protoErr("%s: the user holds a ':'", req.Command)
	case strings.IndexByte(req.Server, ':') >= 0:
		return b, protoErr("%s: the server holds a ':'", req.Command)
	case n != 4 && req.Password != "":
		return b, protoErr("%s takes no password", req.Command)
	}
	start := len(b)
	if mode != Generic {
		b = append(b, 0, 0)
	}
	return endFrame(req.AppendBody(b), start, mode)
}

// AppendFrame appends body to b, framed in mode as AppendRequest frames a
// request, whatever the body holds: it is for peers and tests that send
// what a Request cannot (a malformed request). It refuses, without
// appending, a body over MaxFrame bytes (ErrTooLarge) and, in Generic
// framing, a body that is empty (an empty line gets no reply), holds a
// '\n' or ends with a '\r' (a reader would cut or trim it): a
// *ProtocolError.
func AppendFrame(b []byte, mode Mode, body []byte) ([]byte, error) {
	start := len(b)
	if mode != Generic {
		b = append(b, 0, 0)
	}
	return endFrame(append(b, body...), start, mode)
}

// endFrame completes the frame started at b[start], whose body has been
// appended: it fills in the length, or appends the newline; on an error it
// returns b[:start].
func endFrame(b []byte, start int, mode Mode) ([]byte, error) {
	if mode != Generic {
		n := len(b) - start - 2
		if n > MaxFrame {
			return b[:start], ErrTooLarge
		}
		b[start], b[start+1] = byte(n>>8), byte(n)
		return b, nil
	}
	body := b[start:]
	switch {
	case len(body) > MaxFrame:
		return b[:start], ErrTooLarge
	case len(body) == 0:
		return b[:start], protoErr("an empty generic line is no request")
	case bytes.IndexByte(body, '\n') >= 0:
		return b[:start], protoErr("a generic line cannot hold a newline")
	case body[len(body)-1] == '\r':
		return b[:start], protoErr("a generic line cannot end with a carriage return")
	}
	return append(b, '\n'), nil
}

// ReadReply reads one reply in mode from r: exactly Reply(mode, true) or
// Reply(mode, false). Anything else is a *ProtocolError (the bytes read
// are not in it: a peer that echoes requests back would put a password
// there); a stream that ends before a reply is io.EOF, one that ends
// inside a reply io.ErrUnexpectedEOF. After an error the stream is out of
// step: a later reply may be an earlier request's, so the caller drops it.
func ReadReply(r *bufio.Reader, mode Mode) (bool, error) {
	yes, no := Reply(mode, true), Reply(mode, false)
	b, err := r.Peek(len(yes))
	if err != nil {
		return false, eof(err, len(b) == 0)
	}
	r.Discard(len(b))
	switch string(b) {
	case yes:
		return true, nil
	case no:
		return false, nil
	}
	return false, protoErr("the reply is neither yes nor no in %v framing", mode)
}

// ErrUnasked is the error of a Conn whose peer sent what no request
// asked for: bytes after a reply, or before the next request was written
// (a request answered twice). Such a peer's later replies may be earlier
// requests': the Conn is out of step.
var ErrUnasked = errors.New("protocol: the peer sent a reply nobody asked for")

// Conn is a client connection: it asks one request at a time and reads its
// reply. It is not safe for concurrent use. Once a request fails to be
// written, or its reply to be read, or the peer sends what no request
// asked for (ErrUnasked), the Conn is out of step (a late reply would be
// taken for the next request's) and every later Ask fails: the caller
// closes it and makes a new one.
type Conn struct {
	rw   io.ReadWriter
	br   *bufio.Reader
	mode Mode
	buf  []byte // the request being written, reused
	err  error  // sticky: why the Conn is out of step

	// On a stream with a file descriptor (a socket, a pipe), what waits
	// unread in the kernel before a request is written.
	raw     syscall.RawConn
	pending int
	count   func(fd uintptr) // sets pending; made once, so Ask allocates nothing
}

// NewConn returns a Conn that speaks mode over rw, any stream: a net.Conn,
// a pair of pipes, a socket of the caller's own. Ask adds no allocation
// to rw's own.
func NewConn(rw io.ReadWriter, mode Mode) *Conn {
	// A reply is 2 or 4 bytes; AskBatch has at most MaxBatch in flight.
	c := &Conn{rw: rw, br: bufio.NewReaderSize(rw, 4*MaxBatch), mode: mode, buf: make([]byte, 0, 256)}
	if sc, ok := rw.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.count = func(fd uintptr) { c.pending = unread(fd) }
		}
	}
	return c
}

// Dial connects to address on the named network (net.Dialer's names:
// "unix" for the daemon's socket) and returns a Conn that speaks mode
// over it. ctx bounds the dialling only: SetDeadline bounds requests.
func Dial(ctx context.Context, network, address string, mode Mode) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return NewConn(nc, mode), nil
}

// Ask writes req and returns its reply. A request AppendRequest refuses is
// not written, and the Conn stays usable; any other error leaves it out of
// step for good. Bytes left after the reply, or waiting before req is
// written (on a stream with a file descriptor), are ErrUnasked: the
// answer is then no, even to a request whose reply read yes, since that
// reply may have been another request's.
func (c *Conn) Ask(req Request) (bool, error) {
	if c.err != nil {
		return false, fmt.Errorf("protocol: connection out of step since an earlier error: %w", c.err)
	}
	b, err := AppendRequest(c.buf[:0], c.mode, req)
	if err != nil {
		return false, err
	}
	c.buf = b
	if c.unasked() {
		c.err = ErrUnasked
		return false, c.err
	}
	if _, err := c.rw.Write(b); err != nil {
		c.err = err
		return false, err
	}
	ok, err := ReadReply(c.br, c.mode)
	if err == nil && c.br.Buffered() > 0 {
		ok, err = false, ErrUnasked
	}
	if err != nil {
		c.err = err
	}
	return ok, err
}

// AskBatch writes reqs in one write and reads their replies into oks, in
// order, as Ask does one: one wait for the peer for all of them. It
// returns how many replies it read: oks[:n] answer reqs[:n]. A request
// AppendRequest refuses, and those after it, are not written: n is then
// below len(reqs) and the error is the refusal's, with the Conn usable;
// any other error leaves it out of step for good, reqs[n:] unanswered.
// Bytes waiting before the batch is written, or left after its last
// reply, are ErrUnasked, as for Ask: every answer of the batch is then
// no (n is 0), since any reply read may have been another request's.
func (c *Conn) AskBatch(reqs []Request, oks []bool) (n int, err error) {
	if c.err != nil {
		return 0, fmt.Errorf("protocol: connection out of step since an earlier error: %w", c.err)
	}
	b := c.buf[:0]
	var refused error
	for i, req := range reqs {
		if b, refused = AppendRequest(b, c.mode, req); refused != nil {
			reqs = reqs[:i]
			break
		}
	}
	c.buf = b
	if len(reqs) == 0 {
		return 0, refused
	}
	if c.unasked() {
		c.err = ErrUnasked
		return 0, c.err
	}
	if _, err := c.rw.Write(b); err != nil {
		c.err = err
		return 0, err
	}
	for i := range reqs {
		if oks[i], err = ReadReply(c.br, c.mode); err != nil {
			c.err = err
			return i, err
		}
	}
	if c.br.Buffered() > 0 {
		clear(oks[:len(reqs)])
		c.err = ErrUnasked
		return 0, c.err
	}
	return len(reqs), refused
}

// unasked reports whether bytes came that no request has asked for yet.
func (c *Conn) unasked() bool {
	if c.br.Buffered() > 0 {
		return true
	}
	if c.raw == nil {
		return false
	}
	c.pending = 0
	if c.raw.Control(c.count) != nil {
		return false // closed: the write fails
	}
	return c.pending > 0
}

// Err returns why the Conn is out of step (or closed), nil while it can
// ask: after an error from Ask, nil tells a request that was refused
// unsent from a connection to replace.
func (c *Conn) Err() error { return c.err }

// SetDeadline sets the underlying stream's read and write deadline, if it
// has one (a net.Conn, an *os.File); otherwise it returns an error that
// is errors.ErrUnsupported. A request whose reply misses the deadline
// leaves the Conn out of step.
func (c *Conn) SetDeadline(t time.Time) error {
	d, ok := c.rw.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return fmt.Errorf("protocol: %T has no deadline: %w", c.rw, errors.ErrUnsupported)
	}
	return d.SetDeadline(t)
}

// Close closes the underlying stream if it is an io.Closer; the Conn
// answers no more requests.
func (c *Conn) Close() error {
	if c.err == nil {
		c.err = net.ErrClosed
	}
	if cl, ok := c.rw.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// Query dials address, asks req and hangs up: one request, answered within
// ctx's deadline, or within DefaultClientTimeout when ctx has none. A
// failure to connect or to read the reply is an error, never a no.
func Query(ctx context.Context, network, address string, mode Mode, req Request) (bool, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultClientTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	c, err := Dial(ctx, network, address, mode)
	if err != nil {
		return false, err
	}
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return false, err
	}
	ok, err := c.Ask(req)
	if err != nil {
		return false, fmt.Errorf("no answer: %w", err)
	}
	return ok, nil
}
