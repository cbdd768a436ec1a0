package protocol_test

import (
	"bytes"
	"context"
	"fmt"
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
