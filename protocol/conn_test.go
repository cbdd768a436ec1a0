package protocol

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// frame returns body in ejabberd framing.
func frame(body string) string {
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], uint16(len(body)))
	return string(hdr[:]) + body
}

// result is one ReadRequest outcome.
type result struct {
	body string
	err  error
}

// readAll calls ReadRequest until io.EOF (or 20 calls) and returns what it
// got, the final io.EOF excluded.
func readAll(rd *Reader) []result {
	var got []result
	for i := 0; i < 20; i++ {
		body, err := rd.ReadRequest()
		if err == io.EOF {
			return got
		}
		got = append(got, result{string(body), err})
	}
	return got
}

func TestReader(t *testing.T) {
	long := strings.Repeat("x", DefaultMaxLine+1)
	tests := []struct {
		name     string
		mode     Mode
		in       string
		want     []result
		wantMode Mode
	}{
		// The empty stream: a clean end, nothing read.
		{"empty ejabberd", Ejabberd, "", nil, Ejabberd},
		{"empty generic", Generic, "", nil, Generic},
		// Auto stays undecided when there is no byte to decide on.
		{"empty auto", Auto, "", nil, Auto},
		// One frame.
		{"one frame", Ejabberd, frame("auth:a:b:c"), []result{{"auth:a:b:c", nil}}, Ejabberd},
		// Several frames back to back, as one read may deliver them.
		{"three frames", Ejabberd, frame("auth:a:b:c") + frame("isuser:a:b") + frame("auth:x:y:z:w"),
			[]result{{"auth:a:b:c", nil}, {"isuser:a:b", nil}, {"auth:x:y:z:w", nil}}, Ejabberd},
		// A frame of length 0 is a request (an invalid one), not the end.
		{"empty frame", Ejabberd, frame("") + frame("isuser:a:b"), []result{{"", nil}, {"isuser:a:b", nil}}, Ejabberd},
		// A frame body may hold newlines and NULs: the length rules.
		{"binary frame", Ejabberd, frame("auth:a:b:\n\x00\r"), []result{{"auth:a:b:\n\x00\r", nil}}, Ejabberd},
		// The largest frame.
		{"max frame", Ejabberd, frame(strings.Repeat("y", MaxFrame)), []result{{strings.Repeat("y", MaxFrame), nil}}, Ejabberd},
		// One byte of a length, then the end: a truncated frame.
		{"truncated header", Ejabberd, frame("auth:a:b:c") + "\x00", []result{{"auth:a:b:c", nil}, {"", io.ErrUnexpectedEOF}}, Ejabberd},
		// A length, then fewer bytes than it says: a truncated frame.
		{"truncated body", Ejabberd, frame("auth:a:b:c")[:8], []result{{"", io.ErrUnexpectedEOF}}, Ejabberd},
		// One line.
		{"one line", Generic, "auth:a:b:c\n", []result{{"auth:a:b:c", nil}}, Generic},
		// Many lines in one read, in order.
		{"three lines", Generic, "auth:a:b:c\nisuser:a:b\nauth:x:y:z:w\n",
			[]result{{"auth:a:b:c", nil}, {"isuser:a:b", nil}, {"auth:x:y:z:w", nil}}, Generic},
		// "\r\n" ends a line as "\n" does.
		{"crlf", Generic, "auth:a:b:c\r\nisuser:a:b\r\n", []result{{"auth:a:b:c", nil}, {"isuser:a:b", nil}}, Generic},
		// Only one '\r' before the newline is dropped: the rest is the line's.
		{"two cr", Generic, "auth:a:b:c\r\r\n", []result{{"auth:a:b:c\r", nil}}, Generic},
		// Empty lines are no requests and get no reply.
		{"empty lines", Generic, "\n\r\nauth:a:b:c\n\n", []result{{"auth:a:b:c", nil}}, Generic},
		// The last line without a newline is still a request.
		{"no final newline", Generic, "isuser:a:b\nauth:a:b:c", []result{{"isuser:a:b", nil}, {"auth:a:b:c", nil}}, Generic},
		// A line of exactly the limit is read.
		{"line at limit", Generic, strings.Repeat("z", DefaultMaxLine) + "\r\nisuser:a:b\n",
			[]result{{strings.Repeat("z", DefaultMaxLine), nil}, {"isuser:a:b", nil}}, Generic},
		// A line over the limit is skipped to its newline and what follows
		// is read in sync.
		{"long line", Generic, long + "\nisuser:a:b\n", []result{{"", ErrTooLarge}, {"isuser:a:b", nil}}, Generic},
		// A line many buffers long is skipped as well.
		{"very long line", Generic, strings.Repeat(long, 20) + "\nauth:a:b:c\n", []result{{"", ErrTooLarge}, {"auth:a:b:c", nil}}, Generic},
		// An overlong line cut by the end of input.
		{"long line at eof", Generic, "isuser:a:b\n" + long, []result{{"isuser:a:b", nil}, {"", ErrTooLarge}}, Generic},
		// Auto: a lowercase letter first means lines.
		{"auto generic", Auto, "auth:a:b:c\n", []result{{"auth:a:b:c", nil}}, Generic},
		// Auto: anything else first means frames.
		{"auto ejabberd", Auto, frame("auth:a:b:c"), []result{{"auth:a:b:c", nil}}, Ejabberd},
		// Auto: an uppercase letter is no command, so frames: 'A' 'U' is a
		// length of 16725 that the input does not have.
		{"auto uppercase", Auto, "AUTH:a:b:c\n", []result{{"", io.ErrUnexpectedEOF}}, Ejabberd},
		// Auto decides once: a later frame-like start stays a line.
		{"auto decides once", Auto, "isuser:a:b\n\x00\x0bisuser:a:b\n", []result{{"isuser:a:b", nil}, {"\x00\x0bisuser:a:b", nil}}, Generic},
	}
	for _, tt := range tests {
		readers := map[string]func(string) io.Reader{
			"whole":   func(s string) io.Reader { return strings.NewReader(s) },
			"onebyte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
			"halves":  func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
			"dataerr": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
		}
		for how, mk := range readers {
			rd := NewReader(mk(tt.in), tt.mode, 0)
			got := readAll(rd)
			if !equalResults(got, tt.want) {
				t.Errorf("%s/%s: read %+v, want %+v", tt.name, how, got, tt.want)
			}
			if rd.Mode() != tt.wantMode {
				t.Errorf("%s/%s: Mode() = %v, want %v", tt.name, how, rd.Mode(), tt.wantMode)
			}
			// The end is sticky.
			if _, err := rd.ReadRequest(); err != io.EOF {
				t.Errorf("%s/%s: ReadRequest after the end = %v, want io.EOF", tt.name, how, err)
			}
		}
	}
}

func equalResults(a, b []result) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].body != b[i].body || a[i].err != b[i].err {
			return false
		}
	}
	return true
}

// A read error other than the end of input is returned, and sticks.
func TestReaderErrorSticks(t *testing.T) {
	boom := errors.New("boom")
	rd := NewReader(io.MultiReader(strings.NewReader(frame("isuser:a:b")), iotest.ErrReader(boom)), Ejabberd, 0)
	if body, err := rd.ReadRequest(); err != nil || string(body) != "isuser:a:b" {
		t.Fatalf("ReadRequest = %q, %v", body, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := rd.ReadRequest(); err != boom {
			t.Fatalf("ReadRequest #%d = %v, want %v", i, err, boom)
		}
	}
}

// A smaller line limit is honoured.
func TestReaderMaxLine(t *testing.T) {
	rd := NewReader(strings.NewReader("isuser:a:bc\nisuser:a:b\n"), Generic, 10)
	got := readAll(rd)
	want := []result{{"", ErrTooLarge}, {"isuser:a:b", nil}}
	if !equalResults(got, want) {
		t.Errorf("read %+v, want %+v", got, want)
	}
}

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
		if got := string(Reply(tt.mode, tt.ok)); got != tt.want {
			t.Errorf("Reply(%v, %v) = %q, want %q", tt.mode, tt.ok, got, tt.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Mode
		ok   bool
	}{
		{"auto", Auto, true},
		{"", Auto, true}, // unset: the default
		{"ejabberd", Ejabberd, true},
		{"generic", Generic, true},
		{"Generic", Auto, false}, // names are lowercase
		{"prosody", Auto, false},
	} {
		got, err := ParseMode(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseMode(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && tt.in != "" && got.String() != tt.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
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
		for _, oneByte := range []bool{false, true} {
			h := &testHandler{}
			bad := 0
			s := &Server{Mode: tt.mode, Handler: h, OnBadRequest: func(Mode, error) { bad++ }}
			var in io.Reader = strings.NewReader(tt.in)
			if oneByte {
				in = iotest.OneByteReader(in)
			}
			var out bytes.Buffer
			if err := s.Serve(context.Background(), in, &out); err != nil {
				t.Errorf("%s: Serve = %v, want nil", tt.name, err)
			}
			if out.String() != tt.out {
				t.Errorf("%s (one byte %v): wrote %q, want %q", tt.name, oneByte, out.String(), tt.out)
			}
			if len(h.asked) != tt.asked || bad != tt.bad {
				t.Errorf("%s: handler asked %d times, %d bad requests; want %d, %d", tt.name, len(h.asked), bad, tt.asked, tt.bad)
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
		var out bytes.Buffer
		p := &peer{t: t, name: tt.name, chunks: tt.chunks, owed: tt.owed, out: &out}
		s := &Server{Mode: tt.mode, Handler: &testHandler{}}
		if err := s.Serve(context.Background(), p, p); err != nil {
			t.Errorf("%s: Serve = %v, want nil", tt.name, err)
		}
		if p.failed {
			continue
		}
		if out.String() != tt.out {
			t.Errorf("%s: wrote %q, want %q", tt.name, out.String(), tt.out)
		}
		if tt.writes != 0 && p.writes != tt.writes {
			t.Errorf("%s: %d writes, want %d", tt.name, p.writes, tt.writes)
		}
	}
}
