package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Mode is a framing of requests and replies.
type Mode int

// The framings.
const (
	// Auto picks Generic if the stream starts with a command's name and
	// a ':' ("auth:", "isuser:", ...), and Ejabberd otherwise (see
	// Detect). It looks at what a client cannot choose: an ejabberd frame
	// starts with a 2-byte length, which may be letters (a frame of 0x6100
	// bytes or more, whose length is the password's to choose), but then
	// comes its body, which starts with a command's name too, and no
	// command's name is two letters followed by another's.
	Auto Mode = iota
	// Ejabberd frames each request and reply with a 2-byte big-endian
	// length. Replies are 00 02 00 01 (yes) and 00 02 00 00 (no).
	Ejabberd
	// Generic puts one request per line ('\n', a '\r' before it is
	// ignored). Replies are "1\n" and "0\n".
	Generic
)

// ParseMode parses "auto", "ejabberd" or "generic".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto", "":
		return Auto, nil
	case "ejabberd":
		return Ejabberd, nil
	case "generic":
		return Generic, nil
	}
	return Auto, fmt.Errorf("protocol: unknown protocol %q (want auto, ejabberd or generic)", s)
}

func (m Mode) String() string {
	switch m {
	case Ejabberd:
		return "ejabberd"
	case Generic:
		return "generic"
	}
	return "auto"
}

// MaxFrame is the largest ejabberd frame body: its length is 2 bytes.
const MaxFrame = 0xffff

// DefaultMaxLine is the longest generic request line accepted, newline
// excluded. mod_auth_external itself refuses requests over 1,000 bytes;
// tokenauthd's own Prosody module (prosody/mod_auth_tokenauthd.lua) sends
// none longer than its max_line, which a test holds to this bound.
const DefaultMaxLine = 4096

// ErrTooLarge is returned by a Reader for a request longer than it
// accepts: it has skipped it and stays in sync. AppendRequest and
// AppendFrame return it for a body over MaxFrame bytes.
var ErrTooLarge = errors.New("protocol: request too large")

// errEmptyLine is an empty generic line: no request, and no reply.
var errEmptyLine = errors.New("protocol: empty line")

// Detect tells the framing of a stream from its first bytes, prefix: it
// returns Generic if they start with a command's name and a ':', Ejabberd
// if they cannot, and Auto (undecided) if prefix is too short to tell,
// that is a proper prefix of a command's name and a ':'. A generic request
// is never shorter than its command's name and ':', so a reader that needs
// to decide never waits for more bytes than such a request holds.
func Detect(prefix []byte) Mode {
	if len(prefix) == 0 {
		return Auto
	}
	if prefix[0] < 'a' || prefix[0] > 'z' {
		return Ejabberd // the fast path: every frame under 0x6100 bytes
	}
	undecided := false
	for _, p := range commandPrefixes {
		if len(prefix) >= len(p) {
			if string(prefix[:len(p)]) == p {
				return Generic
			}
		} else if p[:len(prefix)] == string(prefix) {
			undecided = true
		}
	}
	if undecided {
		return Auto
	}
	return Ejabberd
}

// Reader reads requests in one framing.
type Reader struct {
	// OnRequestStart, if set, is called when the first byte of a request
	// (or of an empty generic line) has arrived, before the reader waits
	// for the rest; OnRequestRead when the request has been read whole,
	// skipped for its size, or cut short. Between the two the peer is
	// sending a request; otherwise it may be idle for as long as it
	// likes. A server that bounds the time a request may take to arrive
	// sets a read deadline in the first and clears it in the second.
	OnRequestStart, OnRequestRead func()

	br       *bufio.Reader
	mode     Mode
	maxLine  int
	maxFrame int
	buf      []byte
	hdr      [2]byte // a frame's length; here, not on the stack, whence it would escape
	err      error   // sticky read error
}

// NewReader returns a Reader of requests from r. Auto is resolved on the
// first call to ReadRequest. maxLine bounds generic lines (DefaultMaxLine
// if 0). Frames of any length are read (see NewReaderSize).
func NewReader(r io.Reader, mode Mode, maxLine int) *Reader {
	return NewReaderSize(r, mode, maxLine, MaxFrame)
}

// NewReaderSize is NewReader with a bound on frames too: a frame body
// longer than maxFrame bytes (MaxFrame if 0) is read and discarded,
// without being buffered, and ReadRequest returns ErrTooLarge for it.
// The reader buffers at most max(maxLine, maxFrame, 4 KiB) bytes.
func NewReaderSize(r io.Reader, mode Mode, maxLine, maxFrame int) *Reader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	if maxFrame <= 0 || maxFrame > MaxFrame {
		maxFrame = MaxFrame
	}
	size := maxLine + 2
	if size < 4096 {
		size = 4096
	}
	return &Reader{br: bufio.NewReaderSize(r, size), mode: mode, maxLine: maxLine, maxFrame: maxFrame}
}

// Mode returns the reader's framing (Auto until the first request starts).
func (r *Reader) Mode() Mode { return r.mode }

// ReadRequest returns the next request body, valid until the next call.
// It returns io.EOF at a clean end of input, io.ErrUnexpectedEOF for a
// request cut short by the end of input, and ErrTooLarge for a request that
// was skipped for its size. Read errors are sticky.
func (r *Reader) ReadRequest() ([]byte, error) {
	for {
		if r.err != nil {
			return nil, r.err
		}
		// Wait, for as long as it takes, for the first byte.
		if _, err := r.br.Peek(1); err != nil {
			r.err = eof(err, true)
			return nil, r.err
		}
		if r.OnRequestStart != nil {
			r.OnRequestStart()
		}
		body, err := r.readRequest()
		if r.OnRequestRead != nil {
			r.OnRequestRead()
		}
		switch err {
		case nil, ErrTooLarge:
		case errEmptyLine:
			continue
		case io.ErrUnexpectedEOF:
			r.err = io.EOF // the input has ended: nothing follows the cut request
		default:
			r.err = err
		}
		return body, err
	}
}

// Ready reports whether the next ReadRequest returns without reading the
// underlying reader: a whole request (frame, or non-empty line) is
// buffered. It is false after an error, before the framing is known, and
// for a request that will be skipped for its size. A server that answers
// requests together gathers them while Ready, and never waits for the
// rest of a request while earlier ones go unanswered.
func (r *Reader) Ready() bool {
	if r.err != nil {
		return false
	}
	b, _ := r.br.Peek(r.br.Buffered())
	switch r.mode {
	case Ejabberd:
		if len(b) < 2 {
			return false
		}
		n := int(binary.BigEndian.Uint16(b))
		return n <= r.maxFrame && len(b) >= 2+n
	case Generic:
		for {
			i := bytes.IndexByte(b, '\n')
			if i < 0 || i > r.maxLine+1 {
				return false
			}
			if line := bytes.TrimSuffix(b[:i], []byte("\r")); len(line) > 0 {
				return true
			}
			b = b[i+1:] // an empty line: no request, ReadRequest reads on
		}
	}
	return false
}

// readRequest reads one request whose first byte has arrived.
func (r *Reader) readRequest() ([]byte, error) {
	if r.mode == Auto {
		if err := r.detect(); err != nil {
			return nil, err
		}
	}
	if r.mode == Ejabberd {
		return r.readFrame()
	}
	return r.readLine()
}

// detect resolves Auto, looking at one more byte at a time until Detect
// can tell (at most a command's name and a ':'). Input that ends before
// it can is a short line.
func (r *Reader) detect() error {
	for n := 1; ; n++ {
		b, err := r.br.Peek(n)
		if err != nil {
			if err != io.EOF {
				return err
			}
			r.mode = Generic
			return nil
		}
		if m := Detect(b); m != Auto {
			r.mode = m
			return nil
		}
	}
}

// readFrame reads one frame. Bodies up to the bufio buffer's size are
// returned from it, without a copy; longer ones (up to maxFrame) from buf.
func (r *Reader) readFrame() ([]byte, error) {
	if n, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return nil, eof(err, n == 0)
	}
	n := int(binary.BigEndian.Uint16(r.hdr[:]))
	if n > r.maxFrame {
		if _, err := r.br.Discard(n); err != nil {
			return nil, eof(err, false)
		}
		return nil, ErrTooLarge
	}
	if n <= r.br.Size() {
		b, err := r.br.Peek(n)
		if err != nil {
			return nil, eof(err, false)
		}
		r.br.Discard(n)
		return b, nil
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n, r.maxFrame)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.br, r.buf); err != nil {
		return nil, eof(err, false)
	}
	return r.buf, nil
}

// readLine reads one line; errEmptyLine if it is empty.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull || (err == nil && len(line) > r.maxLine+2):
		return nil, r.skipLine(err)
	case err != nil:
		if len(line) == 0 || err != io.EOF {
			// A read error (a deadline) cuts no line short: it ends it
			// without an answer.
			return nil, eof(err, true)
		}
		// The last line has no newline: answer it all the same.
		r.err = io.EOF
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) > r.maxLine {
		return nil, ErrTooLarge
	}
	if len(line) == 0 {
		// Not a request: a terminal may turn "\r\n" into two lines.
		return nil, errEmptyLine
	}
	return line, nil
}

// skipLine discards the rest of an overlong line.
func (r *Reader) skipLine(err error) error {
	for err == bufio.ErrBufferFull {
		_, err = r.br.ReadSlice('\n')
	}
	if err != nil {
		r.err = eof(err, true)
	}
	return ErrTooLarge
}

// eof maps the end of input to io.EOF when nothing of a request was read
// (clean) and to io.ErrUnexpectedEOF otherwise.
func eof(err error, clean bool) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		if clean {
			return io.EOF
		}
		return io.ErrUnexpectedEOF
	}
	return err
}
