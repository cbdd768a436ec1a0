package protocol

import (
	"errors"
	"fmt"
	"testing"
)

// AskBatch writes the requests in one write and reads their replies in
// order; a request AppendRequest refuses ends the batch unsent with the
// Conn usable; a peer that goes away leaves the rest unanswered and the
// Conn out of step.
func TestConnAskBatch(t *testing.T) {
	alice, bob := Request{CmdIsUser, "alice", "h", ""}, Request{CmdIsUser, "bob", "h", ""}
	bad := Request{CmdIsUser, "a:b", "h", ""}
	tests := []struct {
		name    string
		reqs    []Request
		replies string
		n       int
		oks     []bool
		err     errKind
		usable  bool
		written string
	}{
		{"all answered", []Request{alice, bob, alice}, yesF + noF + yesF, 3, []bool{true, false, true}, noErr, true,
			frame("isuser:alice:h") + frame("isuser:bob:h") + frame("isuser:alice:h")},
		{"refused in the middle", []Request{alice, bad, bob}, yesF, 1, []bool{true}, protoErrKind, true,
			frame("isuser:alice:h")},
		{"refused first", []Request{bad, alice}, "", 0, nil, protoErrKind, true, ""},
		{"the peer goes away", []Request{alice, bob, alice}, yesF + noF[:2], 1, []bool{true}, unexpectedEOF, false,
			frame("isuser:alice:h") + frame("isuser:bob:h") + frame("isuser:alice:h")},
		{"a bad reply", []Request{alice, bob}, yesF + "junk", 1, []bool{true}, protoErrKind, false,
			frame("isuser:alice:h") + frame("isuser:bob:h")},
		// A peer that answers one more time than it was asked: any reply
		// read may be another request's, so none is taken.
		{"a reply nobody asked for", []Request{alice, bob}, yesF + yesF + noF, 0, nil, unasked, false,
			frame("isuser:alice:h") + frame("isuser:bob:h")},
	}
	for _, tt := range tests {
		s := &script{replies: []string{tt.replies}}

		c := NewConn(s, Ejabberd)
		oks := make([]bool, len(tt.reqs))
		n, err := c.AskBatch(tt.reqs, oks)
		if tt.err == unasked && fmt.Sprint(oks) != fmt.Sprint(make([]bool, len(oks))) {
			t.Errorf("%s: answers %v left after a reply nobody asked for, want every one no", tt.name, oks)
		}
		if n != tt.n || !checkErr(err, tt.err) || fmt.Sprint(oks[:n]) != fmt.Sprint(tt.oks[:n]) {
			t.Errorf("%s: %d answered %v, %v; want %d %v, kind %d", tt.name, n, oks[:n], err, tt.n, tt.oks, tt.err)
		}
		if (c.Err() == nil) != tt.usable {
			t.Errorf("%s: Err() = %v, want usable %v", tt.name, c.Err(), tt.usable)
		}
		if s.written.String() != tt.written {
			t.Errorf("%s: wrote %q, want %q", tt.name, s.written.String(), tt.written)
		}
	}
	// Out of step: nothing more is written.
	s := &script{writeErr: errors.New("broken pipe")}
	c := NewConn(s, Ejabberd)
	if n, err := c.AskBatch([]Request{alice}, make([]bool, 1)); n != 0 || err == nil {
		t.Errorf("write error: %d, %v", n, err)
	}
	s.writeErr = nil
	if n, err := c.AskBatch([]Request{alice}, make([]bool, 1)); n != 0 || err == nil || s.written.Len() != 0 {
		t.Errorf("after a write error: %d, %v, wrote %q", n, err, s.written.String())
	}
}
