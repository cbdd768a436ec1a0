package protocol

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Mode is a framing of requests and replies.
type Mode int

// The framings.
const (
	// Auto picks Generic if the stream's first byte is a lowercase ASCII
	// letter (every command starts with one; an ejabberd frame would need
	// a length of at least 0x6100 bytes for that), and Ejabberd otherwise.
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
// excluded. Prosody's module itself refuses requests over 1,000 bytes.
const DefaultMaxLine = 4096

// ErrTooLarge is returned for a request longer than the reader accepts. The
// reader has skipped it and stays in sync.
var ErrTooLarge = errors.New("protocol: request too large")

// Reader reads requests in one framing.
type Reader struct {
	br      *bufio.Reader
	mode    Mode
	maxLine int
	buf     []byte
	hdr     [2]byte // a frame's length; here, not on the stack, whence it would escape
	err     error   // sticky read error
}

// NewReader returns a Reader of requests from r. Auto is resolved on the
// first call to ReadRequest. maxLine bounds generic lines (DefaultMaxLine
// if 0).
func NewReader(r io.Reader, mode Mode, maxLine int) *Reader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	size := maxLine + 2
	if size < 4096 {
		size = 4096
	}
	return &Reader{br: bufio.NewReaderSize(r, size), mode: mode, maxLine: maxLine}
}

// Mode returns the reader's framing (Auto until the first byte is read).
func (r *Reader) Mode() Mode { return r.mode }

// ReadRequest returns the next request body, valid until the next call.
// It returns io.EOF at a clean end of input, io.ErrUnexpectedEOF for a
// request cut short by the end of input, and ErrTooLarge for a request that
// was skipped for its size. Read errors are sticky.
func (r *Reader) ReadRequest() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.mode == Auto {
		b, err := r.br.Peek(1)
		if err != nil {
			r.err = eof(err, true)
			return nil, r.err
		}
		r.mode = Ejabberd
		if b[0] >= 'a' && b[0] <= 'z' {
			r.mode = Generic
		}
	}
	var body []byte
	var err error
	if r.mode == Ejabberd {
		body, err = r.readFrame()
	} else {
		body, err = r.readLine()
	}
	switch err {
	case nil, ErrTooLarge:
	case io.ErrUnexpectedEOF:
		r.err = io.EOF // the input has ended: nothing follows the cut request
	default:
		r.err = err
	}
	return body, err
}

func (r *Reader) readFrame() ([]byte, error) {
	if n, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return nil, eof(err, n == 0)
	}
	n := int(binary.BigEndian.Uint16(r.hdr[:]))
	if cap(r.buf) < n {
		r.buf = make([]byte, n, MaxFrame)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.br, r.buf); err != nil {
		return nil, eof(err, false)
	}
	return r.buf, nil
}

func (r *Reader) readLine() ([]byte, error) {
	for {
		line, err := r.br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull || (err == nil && len(line) > r.maxLine+2):
			return nil, r.skipLine(err)
		case err != nil:
			if len(line) == 0 {
				return nil, eof(err, true)
			}
			// The last line has no newline: answer it all the same.
			r.err = eof(err, true)
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > r.maxLine {
			return nil, ErrTooLarge
		}
		if len(line) == 0 {
			if r.err != nil {
				return nil, r.err
			}
			continue // not a request: a terminal may turn "\r\n" into two lines
		}
		return line, nil
	}
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

// The replies.
var (
	frameYes = []byte{0, 2, 0, 1}
	frameNo  = []byte{0, 2, 0, 0}
	lineYes  = []byte("1\n")
	lineNo   = []byte("0\n")
)

// Reply returns the bytes of a yes or no reply in the given framing (Auto
// is answered as Ejabberd).
func Reply(mode Mode, ok bool) []byte {
	switch {
	case mode == Generic && ok:
		return lineYes
	case mode == Generic:
		return lineNo
	case ok:
		return frameYes
	}
	return frameNo
}

// Handler answers requests.
type Handler interface {
	Answer(ctx context.Context, req Request) bool
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, req Request) bool

// Answer calls f.
func (f HandlerFunc) Answer(ctx context.Context, req Request) bool { return f(ctx, req) }

// Server answers a stream of requests.
type Server struct {
	Mode    Mode    // framing; Auto detects it from the first byte
	Handler Handler // answers well-formed requests
	MaxLine int     // longest generic line (DefaultMaxLine if 0)
	// OnBadRequest, if set, is told of each request answered no without
	// reaching the Handler (malformed, unknown or too large).
	OnBadRequest func(mode Mode, err error)
}

// Serve reads requests from r and writes one reply for each to w, in order,
// until the end of r. Replies are flushed before any read from r: a peer
// that waits for its answer gets it, whatever else it sent, and replies to
// requests that arrived together go out in one write. It returns nil at the
// end of input, or the first read or write error.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	bw := bufio.NewWriter(w)
	rd := NewReader(&flushReader{r: r, w: bw}, s.Mode, s.MaxLine)
	for {
		body, err := rd.ReadRequest()
		if err == io.EOF {
			return bw.Flush()
		}
		if err != nil && err != ErrTooLarge && err != io.ErrUnexpectedEOF {
			bw.Flush()
			return err
		}
		ok := false
		if err == nil {
			var req Request
			if req, err = ParseRequest(string(body)); err == nil {
				ok = s.Handler.Answer(ctx, req)
			}
		}
		if err != nil && s.OnBadRequest != nil {
			s.OnBadRequest(rd.Mode(), err)
		}
		if _, werr := bw.Write(Reply(rd.Mode(), ok)); werr != nil {
			return werr
		}
	}
}

// flushReader flushes w before each read from r. Under a bufio.Reader it
// flushes the pending replies exactly when the requests buffered so far are
// all answered and more input is needed, that is before a read that may
// block: whatever is left in the buffer (an empty line, a '\r', the start
// of the next request) cannot hold a reply back.
type flushReader struct {
	r io.Reader
	w *bufio.Writer
}

func (f *flushReader) Read(p []byte) (int, error) {
	if f.w.Buffered() > 0 {
		if err := f.w.Flush(); err != nil {
			return 0, err
		}
	}
	return f.r.Read(p)
}
