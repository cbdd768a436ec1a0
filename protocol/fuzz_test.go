package protocol

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fuzzcorpus"
)

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
