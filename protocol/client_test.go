package protocol

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// errKind names the error an outcome must have, for tables.
type errKind int

const (
	noErr errKind = iota
	protoErrKind
	tooLarge
	eofErr
	unexpectedEOF
	unasked
)

// checkErr reports whether err is of kind k.
func checkErr(err error, k errKind) bool {
	var pe *ProtocolError
	switch k {
	case noErr:
		return err == nil
	case protoErrKind:
		return errors.As(err, &pe)
	case tooLarge:
		return errors.Is(err, ErrTooLarge)
	case eofErr:
		return errors.Is(err, io.EOF)
	case unexpectedEOF:
		return errors.Is(err, io.ErrUnexpectedEOF)
	case unasked:
		return errors.Is(err, ErrUnasked)
	}
	return false
}

func TestAppendRequest(t *testing.T) {
	long := strings.Repeat("p", MaxFrame-len("auth:u:s:"))
	tests := []struct {
		name string
		mode Mode
		req  Request
		want string // appended to "x"
		err  errKind
	}{
		{"auth ejabberd", Ejabberd, Request{CmdAuth, "alice", "example.org", "pass"},
			frame("auth:alice:example.org:pass"), noErr},
		{"auth generic", Generic, Request{CmdAuth, "alice", "example.org", "pass"},
			"auth:alice:example.org:pass\n", noErr},
		{"auto is ejabberd", Auto, Request{CmdIsUser, "alice", "example.org", ""},
			frame("isuser:alice:example.org"), noErr},
		{"password keeps its colons", Generic, Request{CmdAuth, "a", "b", "p:w:"},
			"auth:a:b:p:w:\n", noErr},
		{"empty fields", Ejabberd, Request{CmdAuth, "", "", ""}, frame("auth:::"), noErr},
		{"a '\\r' inside a generic password", Generic, Request{CmdAuth, "a", "b", "p\rw"},
			"auth:a:b:p\rw\n", noErr},
		{"a '\\n' inside an ejabberd password", Ejabberd, Request{CmdAuth, "a", "b", "p\nw"},
			frame("auth:a:b:p\nw"), noErr},
		{"largest frame", Ejabberd, Request{CmdAuth, "u", "s", long}, frame("auth:u:s:" + long), noErr},
		{"largest line", Generic, Request{CmdAuth, "u", "s", long}, "auth:u:s:" + long + "\n", noErr},
		{"frame too large", Ejabberd, Request{CmdAuth, "u", "s", long + "p"}, "", tooLarge},
		{"line too large", Generic, Request{CmdAuth, "u", "s", long + "p"}, "", tooLarge},
		{"unknown command", Ejabberd, Request{"login", "a", "b", "s3cr3t"}, "", protoErrKind},
		{"no command", Generic, Request{"", "a", "b", "s3cr3t"}, "", protoErrKind},
		{"':' in user", Ejabberd, Request{CmdAuth, "a:b", "s", "s3cr3t"}, "", protoErrKind},
		{"':' in server", Generic, Request{CmdIsUser, "a", "s:1", ""}, "", protoErrKind},
		{"isuser has no password", Ejabberd, Request{CmdIsUser, "a", "s", "s3cr3t"}, "", protoErrKind},
		{"newline in a generic password", Generic, Request{CmdAuth, "a", "s", "s3cr3t\nauth:x:y:z"}, "", protoErrKind},
		{"newline in a generic user", Generic, Request{CmdIsUser, "a\n", "s", ""}, "", protoErrKind},
		{"generic password ending in '\\r'", Generic, Request{CmdAuth, "a", "s", "s3cr3t\r"}, "", protoErrKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendRequest([]byte("x"), tt.mode, tt.req)
			if !checkErr(err, tt.err) {
				t.Fatalf("error %v, want kind %d", err, tt.err)
			}
			if string(got) != "x"+tt.want {
				t.Errorf("appended %q, want %q", got[1:], tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("the error %q holds the password", err)
			}
		})
	}
}

func TestAppendFrame(t *testing.T) {
	tests := []struct {
		mode Mode
		body string
		want string // appended to "x"
		err  errKind
	}{
		{Ejabberd, "nonsense", frame("nonsense"), noErr},
		{Ejabberd, "", "\x00\x00", noErr}, // answered no by a server
		{Ejabberd, strings.Repeat("a", MaxFrame), frame(strings.Repeat("a", MaxFrame)), noErr},
		{Ejabberd, strings.Repeat("a", MaxFrame+1), "", tooLarge},
		{Generic, "nonsense", "nonsense\n", noErr},
		{Generic, "\r", "", protoErrKind},
		{Generic, "", "", protoErrKind},
		{Generic, "a\nb", "", protoErrKind},
		{Generic, strings.Repeat("a", MaxFrame+1), "", tooLarge},
	}
	for _, tt := range tests {
		got, err := AppendFrame([]byte("x"), tt.mode, []byte(tt.body))
		if !checkErr(err, tt.err) || string(got) != "x"+tt.want {
			t.Errorf("AppendFrame(x, %v, %.20q) = %.20q, %v; want %.20q, kind %d", tt.mode, tt.body, got, err, "x"+tt.want, tt.err)
		}
	}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		name string
		mode Mode
		in   string
		want bool
		err  errKind
		left string // what is left unread
	}{
		{"ejabberd yes", Ejabberd, "\x00\x02\x00\x01", true, noErr, ""},
		{"ejabberd no", Ejabberd, "\x00\x02\x00\x00", false, noErr, ""},
		{"ejabberd yes then more", Ejabberd, "\x00\x02\x00\x01\x00\x02", true, noErr, "\x00\x02"},
		{"auto is ejabberd", Auto, "\x00\x02\x00\x01", true, noErr, ""},
		{"generic yes", Generic, "1\n0\n", true, noErr, "0\n"},
		{"generic no", Generic, "0\n", false, noErr, ""},
		{"ejabberd other value", Ejabberd, "\x00\x02\x00\x02", false, protoErrKind, ""},
		{"ejabberd longer frame", Ejabberd, "\x00\x03\x00\x00\x01", false, protoErrKind, "\x01"},
		{"a line where a frame is due", Ejabberd, "1\n0\n", false, protoErrKind, ""},
		{"a frame where a line is due", Generic, "\x00\x02\x00\x01", false, protoErrKind, "\x00\x01"},
		{"tty's line end", Generic, "1\r\n", false, protoErrKind, "\n"},
		{"echoed request", Generic, "auth:a:b:secret\n", false, protoErrKind, "th:a:b:secret\n"},
		{"generic other value", Generic, "2\n", false, protoErrKind, ""},
		{"nothing", Ejabberd, "", false, eofErr, ""},
		{"nothing, generic", Generic, "", false, eofErr, ""},
		{"cut frame", Ejabberd, "\x00\x02\x00", false, unexpectedEOF, "\x00\x02\x00"},
		{"cut line", Generic, "1", false, unexpectedEOF, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tt.in))
			got, err := ReadReply(r, tt.mode)
			if got != tt.want || !checkErr(err, tt.err) {
				t.Fatalf("ReadReply = %v, %v; want %v, kind %d", got, err, tt.want, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("the error %q holds what the peer sent", err)
			}
			if left, _ := io.ReadAll(r); string(left) != tt.left {
				t.Errorf("left %q unread, want %q", left, tt.left)
			}
		})
	}
}

// script is a fake stream: Write records, and makes the next of replies
// the one Read serves; Write may be made to fail.
type script struct {
	written  bytes.Buffer
	replies  []string // what the peer sends back, one per request written
	due      strings.Reader
	writeErr error
}

func (s *script) Write(b []byte) (int, error) {
	if s.writeErr != nil {
		return 0, s.writeErr
	}
	if len(s.replies) > 0 {
		s.due.Reset(s.replies[0])
		s.replies = s.replies[1:]
	}
	return s.written.Write(b)
}

func (s *script) Read(b []byte) (int, error) { return s.due.Read(b) }

// TestConnTranscript asks a scripted stream a series of requests and
// compares the exact bytes written and the answers read.
func TestConnTranscript(t *testing.T) {
	bad := Request{CmdIsUser, "a:b", "s", ""} // refused before writing
	type ask struct {
		req  Request
		want bool
		err  errKind
	}
	tests := []struct {
		name    string
		mode    Mode
		replies []string
		asks    []ask
		written string
	}{
		{"ejabberd", Ejabberd, []string{"\x00\x02\x00\x01", "\x00\x02\x00\x00"}, []ask{
			{Request{CmdAuth, "alice", "h", "p:w"}, true, noErr},
			{bad, false, protoErrKind},
			{Request{CmdIsUser, "bob", "h", ""}, false, noErr},
			{Request{CmdIsUser, "bob", "h", ""}, false, eofErr}, // the peer went away
		}, frame("auth:alice:h:p:w") + frame("isuser:bob:h") + frame("isuser:bob:h")},
		{"generic", Generic, []string{"0\n", "1\n"}, []ask{
			{bad, false, protoErrKind},
			{Request{CmdSeen, "alice", "h", "t"}, false, noErr},
			{Request{CmdUnused, "alice", "h", "t"}, true, noErr},
		}, "seen:alice:h:t\nunused:alice:h:t\n"},
		{"out of step after a bad reply", Generic, []string{"1\r\n1\n"}, []ask{
			{Request{CmdIsUser, "a", "h", ""}, false, protoErrKind},
			// The "1\n" that follows is not this request's answer: nothing
			// is written, nothing is read.
			{Request{CmdIsUser, "b", "h", ""}, false, protoErrKind},
		}, "isuser:a:h\n"},
		{"out of step after a cut reply", Ejabberd, []string{"\x00\x02"}, []ask{
			{Request{CmdIsUser, "a", "h", ""}, false, unexpectedEOF},
			{Request{CmdIsUser, "b", "h", ""}, false, unexpectedEOF},
		}, frame("isuser:a:h")},
		{"out of step after two replies to one request", Ejabberd, []string{"\x00\x02\x00\x01\x00\x02\x00\x01", "\x00\x02\x00\x00"}, []ask{
			{Request{CmdAuth, "alice", "h", "t"}, false, unasked},
			{Request{CmdAuth, "mallory", "h", "t"}, false, unasked},
		}, frame("auth:alice:h:t")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &script{replies: tt.replies}
			c := NewConn(s, tt.mode)
			for i, a := range tt.asks {
				got, err := c.Ask(a.req)
				if got != a.want || !checkErr(err, a.err) {
					t.Errorf("ask %d: %v, %v; want %v, kind %d", i, got, err, a.want, a.err)
				}
				// Only a request refused unsent leaves the Conn usable.
				if usable := err == nil || a.req == bad; (c.Err() == nil) != usable {
					t.Errorf("ask %d: Err() = %v, want usable %v", i, c.Err(), usable)
				}
			}
			if s.written.String() != tt.written {
				t.Errorf("wrote %q, want %q", s.written.String(), tt.written)
			}
		})
	}
}

// A Conn whose write failed reads no reply and writes no more.
func TestConnWriteError(t *testing.T) {
	broken := errors.New("broken pipe")
	s := &script{writeErr: broken, replies: []string{"1\n", "1\n"}}
	c := NewConn(s, Generic)
	for i := 0; i < 2; i++ {
		if ok, err := c.Ask(Request{CmdIsUser, "a", "h", ""}); ok || !errors.Is(err, broken) {
			t.Errorf("ask %d: %v, %v; want false, %v", i, ok, err, broken)
		}
	}
	s.writeErr = nil
	if ok, err := c.Ask(Request{CmdIsUser, "a", "h", ""}); ok || err == nil {
		t.Errorf("after a write error: %v, %v; want an error", ok, err)
	}
	if s.written.Len() != 0 || len(s.replies) != 2 {
		t.Errorf("wrote %q and had %d replies served after a write error", s.written.String(), 2-len(s.replies))
	}
}

// TestConnServer asks a Server, over an in-memory connection, in each
// framing: the Handler gets each request exactly, and its answers come
// back.
func TestConnServer(t *testing.T) {
	reqs := []Request{
		{CmdAuth, "alice", "h", "good"},
		{CmdAuth, "alice", "h", "go:od"},
		{CmdAuth, "alice", "h", "bad"},
		{CmdIsUser, "alice", "h", ""},
		{CmdIsUser, "bob", "h", ""},
		{CmdCertAuth, "alice", "h", "-----BEGIN CERTIFICATE-----"},
	}
	want := []bool{true, true, false, true, false, false}
	for _, mode := range []Mode{Ejabberd, Generic} {
		t.Run(mode.String(), func(t *testing.T) {
			cc, sc := net.Pipe()
			h := &testHandler{}
			done := make(chan error, 1)
			go func() {
				done <- (&Server{Mode: Auto, Handler: h}).Serve(context.Background(), sc, sc)
				sc.Close()
			}()
			c := NewConn(cc, mode)
			for i, r := range reqs {
				if ok, err := c.Ask(r); ok != want[i] || err != nil {
					t.Errorf("Ask(%+v) = %v, %v; want %v", r, ok, err, want[i])
				}
			}
			c.Close()
			if err := <-done; err != nil {
				t.Errorf("Serve = %v", err)
			}
			if len(h.asked) != len(reqs) {
				t.Fatalf("the handler got %d requests, want %d", len(h.asked), len(reqs))
			}
			for i, r := range h.asked {
				if r != reqs[i] {
					t.Errorf("request %d reached the handler as %+v, want %+v", i, r, reqs[i])
				}
			}
		})
	}
}

// TestDial asks a Server on a Unix socket through Dial, with a deadline,
// and checks that a closed Conn asks nothing.
func TestDial(t *testing.T) {
	path := serveUnix(t, func(nc net.Conn) {
		defer nc.Close()
		(&Server{Mode: Auto, Handler: &testHandler{}}).Serve(context.Background(), nc, nc)
	})
	for _, mode := range []Mode{Ejabberd, Generic} {
		c, err := Dial(context.Background(), "unix", path, mode)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("%v: SetDeadline = %v", mode, err)
		}
		if ok, err := c.Ask(Request{CmdIsUser, "alice", "h", ""}); !ok || err != nil {
			t.Errorf("%v: Ask = %v, %v; want true", mode, ok, err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("%v: Close = %v", mode, err)
		}
		if ok, err := c.Ask(Request{CmdIsUser, "alice", "h", ""}); ok || !errors.Is(err, net.ErrClosed) {
			t.Errorf("%v: Ask after Close = %v, %v; want false, net.ErrClosed", mode, ok, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c, err := Dial(ctx, "unix", path, Generic); err == nil {
		c.Close()
		t.Error("Dial with a cancelled context succeeded")
	}
	if _, err := Dial(context.Background(), "unix", filepath.Join(t.TempDir(), "none"), Generic); err == nil {
		t.Error("Dial to no socket succeeded")
	}
	for _, mode := range []Mode{Ejabberd, Generic} {
		if ok, err := Query(context.Background(), "unix", path, mode, Request{CmdIsUser, "alice", "h", ""}); !ok || err != nil {
			t.Errorf("%v: Query = %v, %v; want true", mode, ok, err)
		}
		if ok, err := Query(context.Background(), "unix", path, mode, Request{CmdIsUser, "nobody", "h", ""}); ok || err != nil {
			t.Errorf("%v: Query of a no = %v, %v; want false and no error", mode, ok, err)
		}
	}
	if ok, err := Query(context.Background(), "unix", filepath.Join(t.TempDir(), "none"), Generic, Request{CmdIsUser, "alice", "h", ""}); ok || err == nil {
		t.Errorf("Query to no socket = %v, %v; want an error", ok, err)
	}
}

// Query gives up on a peer that never answers when ctx's deadline passes:
// an error, never a yes, and no hang.
func TestQuerySilentPeer(t *testing.T) {
	var held []net.Conn // held open, never answered
	var mu sync.Mutex
	path := serveUnix(t, func(nc net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		held = append(held, nc)
	})
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, nc := range held {
			nc.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if ok, err := Query(ctx, "unix", path, Generic, Request{CmdIsUser, "alice", "h", ""}); ok || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Query of a silent peer = %v, %v; want false, a deadline error", ok, err)
	}
}

// A stream without deadlines says so; one without Close closes fine.
func TestConnWithoutDeadline(t *testing.T) {
	c := NewConn(&script{}, Generic)
	if err := c.SetDeadline(time.Now()); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SetDeadline = %v, want errors.ErrUnsupported", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

// loopReplies is a stream that takes any write and serves one reply per
// Read, for allocation counts and benchmarks.
type loopReplies struct{ reply string }

func (l *loopReplies) Write(b []byte) (int, error) { return len(b), nil }
func (l *loopReplies) Read(b []byte) (int, error)  { return copy(b, l.reply), nil }

// Ask adds no allocation to its stream's own.
func TestConnAskAllocs(t *testing.T) {
	req := benchRequest()
	for _, mode := range []Mode{Ejabberd, Generic} {
		c := NewConn(&loopReplies{Reply(mode, true)}, mode)
		if n := testing.AllocsPerRun(100, func() {
			if ok, err := c.Ask(req); !ok || err != nil {
				t.Fatalf("Ask = %v, %v", ok, err)
			}
		}); n != 0 {
			t.Errorf("%v: %.1f allocations per Ask, want 0", mode, n)
		}
	}
}

// serveUnix listens on a Unix socket in a temporary directory until the
// test ends, and runs handle in a goroutine of its own for each
// connection. It returns the socket's path.
func serveUnix(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go handle(nc)
		}
	}()
	return path
}

// TestConnUnaskedReplies: a peer that answers one request twice, or sends
// anything after a reply, has put the Conn out of step: a later reply
// may be an earlier request's. Ask answers no with an error, whether the
// extra bytes came with the reply or after it (before the next request),
// and the Conn stays out of step.
func TestConnUnaskedReplies(t *testing.T) {
	yes := Reply(Ejabberd, true)
	for _, tt := range []struct {
		name     string
		mode     Mode
		first    string // the peer's answer to the first request, one write
		stray    string // written once that answer was read ("" none)
		firstYes bool   // the first request's answer
	}{
		{"two replies in one write", Ejabberd, yes + yes, "", false},
		{"a reply and a byte in one write", Ejabberd, yes + "\x00", "", false},
		{"a second reply after the first", Ejabberd, yes, yes, true},
		{"a byte after the reply", Ejabberd, yes, "\x00", true},
		{"two lines in one write", Generic, "1\n1\n", "", false},
		{"a second line after the first", Generic, "1\n", "1\n", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sendStray, strayed := make(chan struct{}), make(chan struct{})
			sock := serveUnix(t, func(c net.Conn) {
				defer c.Close()
				buf := make([]byte, 512)
				if _, err := c.Read(buf); err != nil {
					return
				}
				io.WriteString(c, tt.first)
				<-sendStray
				io.WriteString(c, tt.stray)
				close(strayed)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					io.WriteString(c, Reply(tt.mode, false))
				}
			})
			c, err := Dial(context.Background(), "unix", sock, tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			ok, err := c.Ask(Request{CmdAuth, "alice", "h", "t"})
			if ok != tt.firstYes || (err == nil) != tt.firstYes || (err != nil && !errors.Is(err, ErrUnasked)) {
				t.Errorf("first ask: %v, %v; want %v", ok, err, tt.firstYes)
			}
			close(sendStray)
			<-strayed
			for i := 0; i < 2; i++ {
				if ok, err := c.Ask(Request{CmdAuth, "mallory", "h", "t"}); ok || !errors.Is(err, ErrUnasked) {
					t.Errorf("ask %d after the unasked bytes: %v, %v; want no, and an error", i, ok, err)
				}
			}
			if c.Err() == nil {
				t.Error("the Conn is still usable")
			}
		})
	}
}

// A peer that speaks first, before any request: its words answer nothing,
// and the first request is not written.
func TestConnPeerSpeaksFirst(t *testing.T) {
	spoke := make(chan struct{})
	got := make(chan int, 1)
	sock := serveUnix(t, func(c net.Conn) {
		defer c.Close()
		io.WriteString(c, "1\n")
		close(spoke)
		n, _ := io.Copy(io.Discard, c) // what the client writes, until it hangs up
		got <- int(n)
	})
	c, err := Dial(context.Background(), "unix", sock, Generic)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	<-spoke
	if ok, err := c.Ask(Request{CmdAuth, "alice", "h", "t"}); ok || !errors.Is(err, ErrUnasked) {
		t.Errorf("Ask after the peer spoke first: %v, %v; want no, ErrUnasked", ok, err)
	}
	c.Close()
	if n := <-got; n != 0 {
		t.Errorf("the request was written (%d bytes)", n)
	}
}
