package protocol

import (
	"bufio"
	"context"
	"errors"
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

// BatchHandler is a Handler that can also answer requests that arrived
// together in one call: a relay forwards them in one write. A Server whose
// Handler is one hands it the well-formed requests that it could read
// without waiting for more input (at most MaxBatch), in order; AnswerBatch
// sets oks[i], as long as reqs, to the answer to reqs[i]. A peer that
// sends one request at a time gets batches of one.
type BatchHandler interface {
	Handler
	AnswerBatch(ctx context.Context, reqs []Request, oks []bool)
}

// MaxBatch is the most requests a Server hands a BatchHandler at once.
const MaxBatch = 64

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
	bh, _ := s.Handler.(BatchHandler)
	var b batch
	for {
		body, err := rd.ReadRequest()
		if err == io.EOF || (err != nil && err != ErrTooLarge && err != io.ErrUnexpectedEOF) {
			werr := b.answer(ctx, bh, bw, rd.Mode())
			if ferr := bw.Flush(); err == io.EOF {
				err = errors.Join(werr, ferr)
			}
			return err
		}
		var req Request
		if err == nil {
			req, err = ParseRequest(string(body))
		}
		if err != nil && s.OnBadRequest != nil {
			s.OnBadRequest(rd.Mode(), err)
		}
		if bh == nil {
			ok := err == nil && s.Handler.Answer(ctx, req)
			if _, werr := bw.WriteString(Reply(rd.Mode(), ok)); werr != nil {
				return werr
			}
			continue
		}
		b.add(req, err == nil)
		if len(b.reqs) < MaxBatch && rd.Ready() {
			continue
		}
		if werr := b.answer(ctx, bh, bw, rd.Mode()); werr != nil {
			return werr
		}
	}
}

// batch is the requests read together for a BatchHandler, the well-formed
// ones in reqs and, for each request in order, whether it is one of them.
type batch struct {
	reqs []Request
	oks  []bool
	good []bool
}

func (b *batch) add(req Request, good bool) {
	if good {
		b.reqs = append(b.reqs, req)
	}
	b.good = append(b.good, good)
}

// answer asks h about the batch's requests, writes their replies in order,
// no to the malformed ones, and empties the batch.
func (b *batch) answer(ctx context.Context, h BatchHandler, w *bufio.Writer, mode Mode) error {
	if len(b.good) == 0 {
		return nil
	}
	if cap(b.oks) < len(b.reqs) {
		b.oks = make([]bool, len(b.reqs), MaxBatch)
	}
	b.oks = b.oks[:len(b.reqs)]
	clear(b.oks)
	if len(b.reqs) > 0 {
		h.AnswerBatch(ctx, b.reqs, b.oks)
	}
	i := 0
	for _, good := range b.good {
		ok := false
		if good {
			ok, i = b.oks[i], i+1
		}
		if _, err := w.WriteString(Reply(mode, ok)); err != nil {
			return err
		}
	}
	clear(b.reqs) // the requests' strings are the peer's: hold none
	b.reqs, b.good = b.reqs[:0], b.good[:0]
	return nil
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
