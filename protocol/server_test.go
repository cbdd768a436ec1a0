package protocol

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReply(t *testing.T) {
	tests := []struct {
		mode Mode
		ok   bool
		want string
	}{
		{Ejabberd, true, "\x00\x02\x00\x01"}, // ejabberd's yes
		{Ejabberd, false, "\x00\x02\x00\x00"},
		{Generic, true, "1\n"}, // mod_auth_external's yes
		{Generic, false, "0\n"},
		{Auto, true, "\x00\x02\x00\x01"}, // undecided: ejabberd's
		{Auto, false, "\x00\x02\x00\x00"},
	}
	for _, tt := range tests {
		if got := Reply(tt.mode, tt.ok); got != tt.want {
			t.Errorf("Reply(%v, %v) = %q, want %q", tt.mode, tt.ok, got, tt.want)
		}
		// AppendReply's bytes are the caller's own: changing them
		// changes no later reply.
		b := AppendReply([]byte("x"), tt.mode, tt.ok)
		if string(b) != "x"+tt.want {
			t.Errorf("AppendReply(x, %v, %v) = %q, want %q", tt.mode, tt.ok, b, "x"+tt.want)
		}
		for i := range b {
			b[i] = '?'
		}
		if got := Reply(tt.mode, tt.ok); got != tt.want {
			t.Errorf("after a caller changed its reply, Reply(%v, %v) = %q, want %q", tt.mode, tt.ok, got, tt.want)
		}
	}
}

// testHandler says yes to auth with password "good" and to isuser for
// user "alice", and records what it was asked.
type testHandler struct{ asked []Request }

func (h *testHandler) Answer(_ context.Context, r Request) bool {
	h.asked = append(h.asked, r)
	switch r.Command {
	case CmdAuth:
		return r.Password == "good" || r.Password == "go:od"
	case CmdIsUser:
		return r.User == "alice"
	}
	return false
}

// batchHandler is a testHandler that answers in batches too, and records
// their sizes.
type batchHandler struct {
	testHandler
	sizes []int
}

func (h *batchHandler) AnswerBatch(ctx context.Context, reqs []Request, oks []bool) {
	h.sizes = append(h.sizes, len(reqs))
	for i, r := range reqs {
		oks[i] = h.Answer(ctx, r)
	}
}

// handlers returns a testHandler, and one that answers in batches.
func handlers() map[string]interface {
	Handler
	requests() []Request
} {
	return map[string]interface {
		Handler
		requests() []Request
	}{"one by one": &testHandler{}, "in batches": &batchHandler{}}
}

func (h *testHandler) requests() []Request { return h.asked }

const (
	yesF = "\x00\x02\x00\x01"
	noF  = "\x00\x02\x00\x00"
)

func TestServeTranscript(t *testing.T) {
	long := strings.Repeat("p", DefaultMaxLine+10)
	tests := []struct {
		name  string
		mode  Mode
		in    string
		out   string
		asked int // requests the handler saw
		bad   int // requests reported to OnBadRequest
	}{
		// Nothing in, nothing out.
		{"empty", Auto, "", "", 0, 0},
		// Yes and no, in ejabberd framing.
		{"ejabberd", Ejabberd, frame("auth:alice:h:good") + frame("auth:alice:h:bad") + frame("isuser:alice:h"),
			yesF + noF + yesF, 3, 0},
		// A password with colons reaches the handler whole.
		{"colon password", Ejabberd, frame("auth:alice:h:go:od"), yesF, 1, 0},
		// Malformed and unknown requests are answered no, without the
		// handler, and the stream stays in sync.
		{"bad frames", Ejabberd, frame("bogus") + frame("") + frame("auth:alice:h") + frame("auth:alice:h:good"),
			noF + noF + noF + yesF, 1, 3},
		// Commands the handler refuses.
		{"other commands", Ejabberd, frame("setpass:alice:h:good") + frame("removeuser:alice:h"), noF + noF, 2, 0},
		// A truncated last frame is answered no; the server then ends.
		{"truncated", Ejabberd, frame("auth:alice:h:good") + frame("auth:alice:h:good")[:7], yesF + noF, 1, 1},
		// Generic framing.
		{"generic", Generic, "auth:alice:h:good\nauth:alice:h:bad\r\nisuser:bob:h\n", "1\n0\n0\n", 3, 0},
		// Auto detects lines.
		{"auto generic", Auto, "isuser:alice:h\n", "1\n", 1, 0},
		// Auto detects frames.
		{"auto ejabberd", Auto, frame("isuser:alice:h"), yesF, 1, 0},
		// An overlong line is answered no and skipped; the next is answered.
		{"long line", Generic, "auth:alice:h:" + long + "\nauth:alice:h:good\n", "0\n1\n", 1, 1},
		// Garbage lines.
		{"garbage lines", Generic, "\x00\xff\nauth\n:::\nauth:alice:h:good\n", "0\n0\n0\n1\n", 1, 3},
	}
	for _, tt := range tests {
		for hname, h := range handlers() {
			for _, oneByte := range []bool{false, true} {
				name := fmt.Sprintf("%s, %s, one byte %v", tt.name, hname, oneByte)
				before, bad := len(h.requests()), 0
				s := &Server{Mode: tt.mode, Handler: h, OnBadRequest: func(Mode, error) { bad++ }}
				var in io.Reader = strings.NewReader(tt.in)
				if oneByte {
					in = iotest.OneByteReader(in)
				}
				var out bytes.Buffer
				if err := s.Serve(context.Background(), in, &out); err != nil {
					t.Errorf("%s: Serve = %v, want nil", name, err)
				}
				if out.String() != tt.out {
					t.Errorf("%s: wrote %q, want %q", name, out.String(), tt.out)
				}
				if n := len(h.requests()) - before; n != tt.asked || bad != tt.bad {
					t.Errorf("%s: handler asked %d times, %d bad requests; want %d, %d", name, n, bad, tt.asked, tt.bad)
				}
			}
		}
	}
}

// Each reply is written before the next request is read: ejabberd sends
// one request and waits for its answer.
func TestServeFlushesEachReply(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &Server{Mode: Ejabberd, Handler: &testHandler{}}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), inR, outW) }()
	for _, req := range []struct{ body, reply string }{
		{"auth:alice:h:good", yesF},
		{"auth:alice:h:bad", noF},
		{"isuser:alice:h", yesF},
	} {
		if _, err := io.WriteString(inW, frame(req.body)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4)
		if _, err := io.ReadFull(outR, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != req.reply {
			t.Errorf("%s: reply %q, want %q", req.body, got, req.reply)
		}
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v at the end of input, want nil", err)
	}
}

// A write error ends Serve with that error.
func TestServeWriteError(t *testing.T) {
	s := &Server{Mode: Ejabberd, Handler: &testHandler{}}
	w := errWriter{errors.New("closed")}
	if err := s.Serve(context.Background(), strings.NewReader(frame("isuser:alice:h")), w); err != w.err {
		t.Errorf("Serve = %v, want %v", err, w.err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// peer is a scripted peer that waits for its replies: it hands the server
// one chunk of input per Read, and before each chunk checks that every reply
// it is owed has been written. A server that holds a reply back while it
// waits for more input would, with a real peer, wait forever (the peer
// times out and then reads the stale reply as the answer to its next
// request); here the peer reports it and ends the input.
type peer struct {
	t      *testing.T
	name   string
	chunks []string // input, one chunk per Read
	owed   []string // owed[i]: all output due before chunk i is sent
	out    *bytes.Buffer
	writes int // Write calls on out
	failed bool
}

func (p *peer) Read(b []byte) (int, error) {
	if len(p.chunks) == 0 {
		return 0, io.EOF
	}
	if got := p.out.String(); got != p.owed[0] {
		p.t.Errorf("%s: before sending %q the peer has %q, want %q", p.name, p.chunks[0], got, p.owed[0])
		p.chunks, p.failed = nil, true
		return 0, io.EOF
	}
	if len(b) < len(p.chunks[0]) {
		p.t.Fatalf("%s: read buffer of %d bytes", p.name, len(b))
	}
	n := copy(b, p.chunks[0])
	p.chunks, p.owed = p.chunks[1:], p.owed[1:]
	return n, nil
}

func (p *peer) Write(b []byte) (int, error) {
	p.writes++
	return p.out.Write(b)
}

// Every reply reaches the peer before the server waits for more input,
// whatever follows the request in the same read: an empty line, a stray
// '\r', the start of the next request. Requests that arrived together are
// still answered with one write.
func TestServeRepliesBeforeWaiting(t *testing.T) {
	tests := []struct {
		name   string
		mode   Mode
		chunks []string
		owed   []string // output due before each chunk
		out    string   // all output
		writes int      // Write calls, if not 0
	}{
		{"empty line after", Auto, []string{"isuser:alice:h\n\n", "isuser:bob:h\n"}, []string{"", "1\n"}, "1\n0\n", 0},
		{"crlf line after", Generic, []string{"isuser:alice:h\n\r\n", "isuser:bob:h\n"}, []string{"", "1\n"}, "1\n0\n", 0},
		{"stray cr after", Generic, []string{"isuser:alice:h\n\r", "\nisuser:bob:h\n"}, []string{"", "1\n"}, "1\n0\n", 0},
		{"part of the next line", Generic, []string{"isuser:alice:h\nisuser:b", "ob:h\n"}, []string{"", "1\n"}, "1\n0\n", 0},
		{"part of the next frame", Ejabberd, []string{frame("isuser:alice:h") + "\x00", frame("isuser:bob:h")[1:]}, []string{"", yesF}, yesF + noF, 0},
		{"next frame's body missing", Auto, []string{frame("isuser:alice:h") + frame("isuser:bob:h")[:2], "isuser:bob:h"}, []string{"", yesF}, yesF + noF, 0},
		{"bad request then part", Generic, []string{"bogus\nisuser:al", "ice:h\n"}, []string{"", "0\n"}, "0\n1\n", 0},
		// Pipelined requests: one write for the batch.
		{"batch", Generic, []string{"isuser:alice:h\nisuser:bob:h\nauth:alice:h:good\n", "isuser:alice:h\n"}, []string{"", "1\n0\n1\n"}, "1\n0\n1\n1\n", 2},
	}
	for _, tt := range tests {
		for hname, h := range handlers() {
			var out bytes.Buffer
			name := tt.name + ", " + hname
			p := &peer{t: t, name: name, chunks: tt.chunks, owed: tt.owed, out: &out}
			s := &Server{Mode: tt.mode, Handler: h}
			if err := s.Serve(context.Background(), p, p); err != nil {
				t.Errorf("%s: Serve = %v, want nil", name, err)
			}
			if p.failed {
				continue
			}
			if out.String() != tt.out {
				t.Errorf("%s: wrote %q, want %q", name, out.String(), tt.out)
			}
			if tt.writes != 0 && p.writes != tt.writes {
				t.Errorf("%s: %d writes, want %d", name, p.writes, tt.writes)
			}
		}
	}
}

// A BatchHandler gets the requests read together, in order, at most
// MaxBatch at a time, and only those: never one that would need more input
// while earlier ones wait for their answers. Malformed requests among them
// are answered no in their place, without the handler.
func TestServeBatches(t *testing.T) {
	many := strings.Repeat(frame("isuser:alice:h"), MaxBatch+6)
	tests := []struct {
		name    string
		in      string
		oneByte bool
		sizes   []int  // the batches handed to AnswerBatch
		out     string // all replies
	}{
		{"together", frame("isuser:alice:h") + frame("isuser:bob:h") + frame("auth:alice:h:good"), false, []int{3}, yesF + noF + yesF},
		{"bad in between", frame("isuser:alice:h") + frame("bogus") + frame("isuser:bob:h"), false, []int{2}, yesF + noF + noF},
		{"only bad", frame("bogus") + frame(""), false, nil, noF + noF},
		{"more than MaxBatch", many, false, []int{MaxBatch, 6}, strings.Repeat(yesF, MaxBatch+6)},
		{"one byte at a time", frame("isuser:alice:h") + frame("isuser:bob:h"), true, []int{1, 1}, yesF + noF},
		{"lines", "isuser:alice:h\n\r\n\nisuser:bob:h\nisuser:alice:h\n", false, []int{3}, "1\n0\n1\n"},
		{"truncated last", frame("isuser:alice:h") + frame("isuser:bob:h")[:5], false, []int{1}, yesF + noF},
	}
	for _, tt := range tests {
		h := &batchHandler{}
		var in io.Reader = strings.NewReader(tt.in)
		if tt.oneByte {
			in = iotest.OneByteReader(in)
		}
		var out bytes.Buffer
		s := &Server{Handler: h}
		if err := s.Serve(context.Background(), in, &out); err != nil {
			t.Errorf("%s: Serve = %v", tt.name, err)
		}
		if out.String() != tt.out {
			t.Errorf("%s: wrote %q, want %q", tt.name, out.String(), tt.out)
		}
		if fmt.Sprint(h.sizes) != fmt.Sprint(tt.sizes) {
			t.Errorf("%s: batches of %v, want %v", tt.name, h.sizes, tt.sizes)
		}
	}
}
