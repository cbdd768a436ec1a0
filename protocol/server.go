package protocol

import (
	"bufio"
	"context"
	"io"
)

// The replies.
const (
	frameYes = "\x00\x02\x00\x01"
	frameNo  = "\x00\x02\x00\x00"
	lineYes  = "1\n"
	lineNo   = "0\n"
)

// Reply returns the bytes of a yes or no reply in the given framing (Auto,
// and any other value but Generic, is answered as Ejabberd). They are a
// string: no caller can change the replies others send.
func Reply(mode Mode, ok bool) string {
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

// AppendReply appends the bytes of a yes or no reply in the given framing
// to b, as Reply gives them.
func AppendReply(b []byte, mode Mode, ok bool) []byte {
	return append(b, Reply(mode, ok)...)
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
	Mode    Mode    // framing; Auto detects it from the first bytes
	Handler Handler // answers well-formed requests
	MaxLine int     // longest generic line (DefaultMaxLine if 0)
	// MaxFrame is the longest ejabberd frame body buffered (MaxFrame if
	// 0); a longer one is read, discarded and answered no.
	MaxFrame int
	// OnRequestStart and OnRequestRead, if set, are the Reader's hooks of
	// the same names: they tell when a request has started arriving and
	// when it has been read.
	OnRequestStart, OnRequestRead func()
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
	rd := NewReaderSize(&flushReader{r: r, w: bw}, s.Mode, s.MaxLine, s.MaxFrame)
	rd.OnRequestStart, rd.OnRequestRead = s.OnRequestStart, s.OnRequestRead
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
		if _, werr := bw.WriteString(Reply(rd.Mode(), ok)); werr != nil {
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
