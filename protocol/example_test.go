package protocol_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/tokenauthd/tokenauthd/protocol"
)

func ExampleParseRequest() {
	// The password is the last field: it keeps its colons.
	r, err := protocol.ParseRequest("auth:alice:example.org:pass:word")
	fmt.Printf("%q %q %q %q %v\n", r.Command, r.User, r.Server, r.Password, err)
	// Output: "auth" "alice" "example.org" "pass:word" <nil>
}

func ExampleServer_Serve() {
	s := &protocol.Server{
		Mode: protocol.Generic,
		Handler: protocol.HandlerFunc(func(_ context.Context, r protocol.Request) bool {
			return r.Command == protocol.CmdIsUser && r.User == "alice"
		}),
	}
	var out bytes.Buffer
	s.Serve(context.Background(), strings.NewReader("isuser:alice:example.org\nisuser:bob:example.org\nnonsense\n"), &out)
	fmt.Printf("%q\n", out.String())
	// Output: "1\n0\n0\n"
}

func ExampleAppendRequest() {
	req := protocol.Request{Command: protocol.CmdAuth, User: "alice", Server: "example.org", Password: "pass:word"}
	frame, _ := protocol.AppendRequest(nil, protocol.Ejabberd, req)
	line, _ := protocol.AppendRequest(nil, protocol.Generic, req)
	fmt.Printf("%q\n%q\n", frame, line) // the frame's length, 0x0020, prints as "\x00 "
	// A ':' in the user would move the password's start: refused.
	req.User = "al:ice"
	_, err := protocol.AppendRequest(nil, protocol.Generic, req)
	fmt.Println(err)
	// Output:
	// "\x00 auth:alice:example.org:pass:word"
	// "auth:alice:example.org:pass:word\n"
	// protocol: auth: the user holds a ':'
}

func ExampleReadReply() {
	r := bufio.NewReader(strings.NewReader("1\n0\n1\r\n"))
	for {
		ok, err := protocol.ReadReply(r, protocol.Generic)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(ok)
	}
	// Output:
	// true
	// false
	// protocol: the reply is neither yes nor no in generic framing
}

func ExampleConn_Ask() {
	client, server := net.Pipe()
	s := &protocol.Server{
		Mode: protocol.Auto,
		Handler: protocol.HandlerFunc(func(_ context.Context, r protocol.Request) bool {
			return r.Command == protocol.CmdIsUser && r.User == "alice"
		}),
	}
	go s.Serve(context.Background(), server, server)

	c := protocol.NewConn(client, protocol.Ejabberd)
	defer c.Close()
	for _, user := range []string{"alice", "bob"} {
		ok, err := c.Ask(protocol.Request{Command: protocol.CmdIsUser, User: user, Server: "example.org"})
		fmt.Println(user, ok, err)
	}
	// Output:
	// alice true <nil>
	// bob false <nil>
}
