package protocol

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tokenauthd/tokenauthd/internal/fuzzcorpus"
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

func TestParseRequest(t *testing.T) {
	tests := []struct {
		body string
		want Request
		ok   bool
	}{
		// auth: four fields.
		{"auth:alice:example.org:secret", Request{CmdAuth, "alice", "example.org", "secret"}, true},
		// The password is the last field and keeps every ':' it holds.
		{"auth:alice:example.org:a:b::c:", Request{CmdAuth, "alice", "example.org", "a:b::c:"}, true},
		// A password that is only colons.
		{"auth:alice:example.org:::", Request{CmdAuth, "alice", "example.org", "::"}, true},
		// An empty password is a (wrong) password, not a malformed request.
		{"auth:alice:example.org:", Request{CmdAuth, "alice", "example.org", ""}, true},
		// A token: digits, a space, base64 with '+', '/' and '='.
		{"auth:bob:h:1234567890 ab+/cd==", Request{CmdAuth, "bob", "h", "1234567890 ab+/cd=="}, true},
		// auth without a password field.
		{"auth:alice:example.org", Request{}, false},
		// auth with only a user.
		{"auth:alice", Request{}, false},
		// The command alone.
		{"auth", Request{}, false},
		// isuser: three fields.
		{"isuser:alice:example.org", Request{CmdIsUser, "alice", "example.org", ""}, true},
		// isuser with a fourth field.
		{"isuser:alice:example.org:x", Request{}, false},
		// isuser with two fields.
		{"isuser:alice", Request{}, false},
		// setpass: four fields.
		{"setpass:alice:example.org:new:pw", Request{CmdSetPass, "alice", "example.org", "new:pw"}, true},
		// setpass without a password.
		{"setpass:alice:example.org", Request{}, false},
		// tryregister: four fields.
		{"tryregister:alice:example.org:pw", Request{CmdTryRegister, "alice", "example.org", "pw"}, true},
		// tryregister with three.
		{"tryregister:alice:example.org", Request{}, false},
		// removeuser: three fields.
		{"removeuser:alice:example.org", Request{CmdRemoveUser, "alice", "example.org", ""}, true},
		// removeuser with a password is not removeuser.
		{"removeuser:alice:example.org:pw", Request{}, false},
		// removeuser3: four fields.
		{"removeuser3:alice:example.org:pw", Request{CmdRemoveUser3, "alice", "example.org", "pw"}, true},
		// removeuser3 without a password.
		{"removeuser3:alice:example.org", Request{}, false},
		// certauth: the certificate is the last field, colons and all.
		{"certauth:alice:example.org:MII:x", Request{CmdCertAuth, "alice", "example.org", "MII:x"}, true},
		// certauth without a certificate.
		{"certauth:alice:example.org", Request{}, false},
		// An unknown command.
		{"login:alice:example.org:pw", Request{}, false},
		// Commands are case-sensitive.
		{"AUTH:alice:example.org:pw", Request{}, false},
		// The empty request.
		{"", Request{}, false},
		// Only separators.
		{":::", Request{}, false},
		// A command with a trailing space.
		{"auth :alice:example.org:pw", Request{}, false},
		// Empty user and server are passed on: the handler refuses them.
		{"auth:::pw", Request{CmdAuth, "", "", "pw"}, true},
		// Bytes that are not UTF-8 in the password are kept as they are.
		{"auth:a:b:\xff\x00", Request{CmdAuth, "a", "b", "\xff\x00"}, true},
	}
	for _, tt := range tests {
		got, err := ParseRequest(tt.body)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("ParseRequest(%q) = %+v, %v, want %+v, nil", tt.body, got, err, tt.want)
			}
			continue
		}
		var perr *ProtocolError
		if !errors.As(err, &perr) {
			t.Errorf("ParseRequest(%q) = %+v, %v, want a *ProtocolError", tt.body, got, err)
			continue
		}
		if got != (Request{}) {
			t.Errorf("ParseRequest(%q) = %+v with an error, want the zero Request", tt.body, got)
		}
		// The error never quotes the request: it may hold a password.
		if strings.Contains(err.Error(), "alice") || strings.Contains(err.Error(), "pw") {
			t.Errorf("ParseRequest(%q) error %q quotes the request", tt.body, err)
		}
	}
}

// The seeds of these targets are in testdata/fuzz/FuzzX/ (see
// TestFuzzCorpus); `go test` runs them, `go test -fuzz FuzzX` explores.

// FuzzReader feeds any bytes to a Server in each framing: it must answer
// every request it reads with a well-formed reply, never panic, and end.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, mode byte) {
		m := Mode(mode % 3)
		h := &testHandler{}
		bad := 0
		s := &Server{Mode: m, Handler: h, OnBadRequest: func(Mode, error) { bad++ }}
		var out bytes.Buffer
		if err := s.Serve(context.Background(), bytes.NewReader(data), &out); err != nil {
			t.Fatalf("Serve = %v", err)
		}
		replies := len(h.asked) + bad
		// Replies are all of one framing, one per request.
		yes, no := Reply(Ejabberd, true), Reply(Ejabberd, false)
		if m == Generic || (m == Auto && startsGeneric(data)) {
			yes, no = Reply(Generic, true), Reply(Generic, false)
		}
		rest := out.String()
		for i := 0; i < replies; i++ {
			switch {
			case strings.HasPrefix(rest, yes):
				rest = rest[len(yes):]
			case strings.HasPrefix(rest, no):
				rest = rest[len(no):]
			default:
				t.Fatalf("reply %d of %d is not %q or %q: output %q", i, replies, yes, no, out.String())
			}
		}
		if rest != "" {
			t.Fatalf("%d replies, and %q more", replies, rest)
		}
		for _, r := range h.asked {
			if strings.Contains(r.User, ":") || strings.Contains(r.Server, ":") {
				t.Fatalf("handler got a user or server with ':': %+v", r)
			}
		}

		// Generic framing keeps in sync whatever comes before a newline:
		// a valid request after the garbage gets its own answer.
		if m == Generic {
			in := append(append(bytes.Clone(data), '\n'), "isuser:alice:h\n"...)
			out.Reset()
			if err := s.Serve(context.Background(), bytes.NewReader(in), &out); err != nil {
				t.Fatalf("Serve = %v", err)
			}
			if !strings.HasSuffix(out.String(), "1\n") {
				t.Fatalf("after %q the valid request got no yes: output %q", data, out.String())
			}
		}
	})
}

// startsGeneric tells, independently of Detect, whether Auto takes in for
// lines: it starts with a command's name and a ':', or ends before it can
// tell (a proper prefix of one).
func startsGeneric(in []byte) bool {
	for _, c := range Commands() {
		p := []byte(c + ":")
		if bytes.HasPrefix(in, p) || (len(in) > 0 && len(in) < len(p) && bytes.HasPrefix(p, in)) {
			return true
		}
	}
	return false
}

// FuzzParseRequest checks that ParseRequest never panics and that a parsed
// request is exactly its input, split at most three times, and joins back
// to it (AppendBody).
func FuzzParseRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, body string) {
		r, err := ParseRequest(body)
		if err != nil {
			if r != (Request{}) {
				t.Fatalf("ParseRequest(%q) = %+v with error %v", body, r, err)
			}
			return
		}
		n, ok := fields[r.Command]
		if !ok {
			t.Fatalf("ParseRequest(%q) gave unknown command %q", body, r.Command)
		}
		joined := string(r.AppendBody(nil))
		if n != 4 && r.Password != "" {
			t.Fatalf("ParseRequest(%q): %s has a password %q", body, r.Command, r.Password)
		}
		if joined != body {
			t.Fatalf("ParseRequest(%q) = %+v, which joins to %q", body, r, joined)
		}
		if strings.Contains(r.User, ":") || strings.Contains(r.Server, ":") {
			t.Fatalf("ParseRequest(%q) = %+v: ':' in user or server", body, r)
		}
	})
}

// Every fuzz target has seeds that `go test` runs.
func TestFuzzCorpus(t *testing.T) { fuzzcorpus.Check(t) }

// FuzzReadReply reads replies from any bytes in each framing until an
// error: each yes or no must be exactly Reply's bytes, in step, and
// anything else an error of the expected kind that holds none of the
// bytes read.
func FuzzReadReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, mode byte) {
		m := Mode(mode % 3)
		yes, no := Reply(m, true), Reply(m, false)
		r := bufio.NewReader(bytes.NewReader(data))
		rest := data
		for {
			ok, err := ReadReply(r, m)
			if err != nil {
				if ok {
					t.Fatalf("yes with error %v", err)
				}
				checkReplyErr(t, err, m, rest)
				return
			}
			want := no
			if ok {
				want = yes
			}
			if !bytes.HasPrefix(rest, []byte(want)) {
				t.Fatalf("ReadReply = %v from %q", ok, rest)
			}
			rest = rest[len(want):]
		}
	})
}

// checkReplyErr checks the error ReadReply gave for the input rest.
func checkReplyErr(t *testing.T, err error, m Mode, rest []byte) {
	t.Helper()
	n := len(Reply(m, true))
	switch {
	case len(rest) == 0:
		if err != io.EOF {
			t.Fatalf("at the end of input: %v, want io.EOF", err)
		}
	case len(rest) < n:
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("%q left: %v, want io.ErrUnexpectedEOF", rest, err)
		}
	case string(rest[:n]) == Reply(m, true) || string(rest[:n]) == Reply(m, false):
		t.Fatalf("%q left: %v, want a reply", rest, err)
	default:
		var pe *ProtocolError
		if !errors.As(err, &pe) || err.Error() != "protocol: the reply is neither yes nor no in "+m.String()+" framing" {
			t.Fatalf("%q left: %v, want the ProtocolError", rest, err)
		}
	}
}

// FuzzAppendRequest checks that AppendRequest refuses exactly the requests
// it must, and that a Reader that detects the framing (Auto) reads each
// one it frames back, whole, in its framing, as exactly that request.
func FuzzAppendRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, cmd, user, server, password string, mode byte) {
		m := Mode(mode % 3)
		req := Request{cmd, user, server, password}
		b, err := AppendRequest(nil, m, req)
		if valid := appendable(m, req); valid != (err == nil) {
			t.Fatalf("AppendRequest(%v, %+q) = %v, want valid %v", m, req, err, valid)
		}
		if err != nil {
			if len(b) != 0 {
				t.Fatalf("AppendRequest(%v, %+q) appended %q with error %v", m, req, b, err)
			}
			return
		}
		rd := NewReader(bytes.NewReader(b), Auto, MaxFrame)
		body, err := rd.ReadRequest()
		want := Ejabberd
		if m == Generic {
			want = Generic
		}
		if err != nil || rd.Mode() != want {
			t.Fatalf("%q read back as %v: %v (want %v)", b, rd.Mode(), err, want)
		}
		if got, err := ParseRequest(string(body)); err != nil || got != req {
			t.Fatalf("%+q read back as %+q, %v", req, got, err)
		}
		if _, err := rd.ReadRequest(); err != io.EOF {
			t.Fatalf("%q: after the request: %v, want io.EOF", b, err)
		}
	})
}

// appendable tells, independently of AppendRequest, whether it must
// frame req in m.
func appendable(m Mode, req Request) bool {
	n, ok := fields[req.Command]
	body := req.Command + ":" + req.User + ":" + req.Server
	if n == 4 {
		body += ":" + req.Password
	}
	switch {
	case !ok, strings.Contains(req.User, ":"), strings.Contains(req.Server, ":"),
		n == 3 && req.Password != "", len(body) > MaxFrame:
		return false
	case m == Generic:
		return !strings.Contains(body, "\n") && !strings.HasSuffix(body, "\r")
	}
	return true
}

// Ready is true exactly when the next ReadRequest needs no read: a whole
// frame, or a whole non-empty line, is buffered.
func TestReaderReady(t *testing.T) {
	tests := []struct {
		name string
		mode Mode
		in   string // what the reader holds after its first request
		want bool
	}{
		{"nothing", Ejabberd, "", false},
		{"a whole frame", Ejabberd, frame("isuser:bob:h"), true},
		{"a length only", Ejabberd, frame("isuser:bob:h")[:2], false},
		{"half a length", Ejabberd, "\x00", false},
		{"a frame but its last byte", Ejabberd, frame("isuser:bob:h")[:13], false},
		{"an empty frame", Ejabberd, frame(""), true},
		{"a frame over the bound", Ejabberd, "\x10\x01" + strings.Repeat("x", 100), false},
		{"a whole line", Generic, "isuser:bob:h\n", true},
		{"a line without its newline", Generic, "isuser:bob:h", false},
		{"empty lines, then a whole one", Generic, "\n\r\n\nisuser:bob:h\n", true},
		{"empty lines only", Generic, "\n\r\n", false},
		{"empty lines, then part of one", Generic, "\n\nisuser:b", false},
		{"a line over the bound", Generic, strings.Repeat("x", 30) + "\n", false},
	}
	for _, tt := range tests {
		first := frame("isuser:alice:h")
		if tt.mode == Generic {
			first = "isuser:alice:h\n"
		}
		r := NewReaderSize(strings.NewReader(first+tt.in), tt.mode, 20, 0x1000)
		r.br.Peek(len(first) + len(tt.in)) // everything buffered, as one read gives it
		if _, err := r.ReadRequest(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := r.Ready(); got != tt.want {
			t.Errorf("%s: Ready = %v, want %v", tt.name, got, tt.want)
		}
	}
	r := NewReader(strings.NewReader(""), Ejabberd, 0)
	r.ReadRequest()
	if r.Ready() {
		t.Error("Ready after the end of input")
	}
}
