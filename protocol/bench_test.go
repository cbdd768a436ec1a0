package protocol

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
)

// yesHandler says yes to everything.
var yesHandler = HandlerFunc(func(context.Context, Request) bool { return true })

// requests returns n copies of one auth request in the given framing.
func requests(mode Mode, n int) []byte {
	body := "auth:alice:example.org:12345678" + strings.Repeat("0", 32) + " " + strings.Repeat("A", 43) + "="
	one := frame(body)
	if mode == Generic {
		one = body + "\n"
	}
	return []byte(strings.Repeat(one, n))
}

// The frame loop allocates once per request at most (the request's string)
// once it runs: buffers are reused.
func TestServeAllocs(t *testing.T) {
	for _, mode := range []Mode{Ejabberd, Generic} {
		allocs := func(n int) float64 {
			in := requests(mode, n)
			s := &Server{Mode: mode, Handler: yesHandler}
			r := bytes.NewReader(in)
			return testing.AllocsPerRun(20, func() {
				r.Reset(in)
				s.Serve(context.Background(), r, io.Discard)
			})
		}
		if per := (allocs(101) - allocs(1)) / 100; per > 1 {
			t.Errorf("%v: %.2f allocations per request, want at most 1", mode, per)
		}
	}
}

// BenchmarkServe measures the frame loop alone (a handler that says yes)
// on a stream of requests already in memory.
func BenchmarkServe(b *testing.B) {
	for _, mode := range []Mode{Ejabberd, Generic} {
		b.Run(mode.String(), func(b *testing.B) {
			const batch = 1000
			in := requests(mode, batch)
			s := &Server{Mode: mode, Handler: yesHandler}
			r := bytes.NewReader(in)
			b.ReportAllocs()
			b.SetBytes(int64(len(in) / batch))
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				r.Reset(in)
				s.Serve(context.Background(), r, io.Discard)
			}
		})
	}
}

// benchRequest is an auth request with a token of mod_auth_token's size.
func benchRequest() Request {
	return Request{CmdAuth, "alice", "example.org", "12345678" + strings.Repeat("0", 32) + " " + strings.Repeat("A", 43) + "="}
}

// BenchmarkConnAsk measures a Conn's own cost per request (framing, write,
// reading and checking the reply) over a stream that costs nothing: it
// must allocate nothing (see TestConnAskAllocs).
func BenchmarkConnAsk(b *testing.B) {
	req := benchRequest()
	for _, mode := range []Mode{Ejabberd, Generic} {
		b.Run(mode.String(), func(b *testing.B) {
			c := NewConn(&loopReplies{Reply(mode, true)}, mode)
			b.ReportAllocs()
			for b.Loop() {
				if ok, err := c.Ask(req); !ok || err != nil {
					b.Fatalf("Ask = %v, %v", ok, err)
				}
			}
		})
	}
}

// BenchmarkConnAskSocket measures a round trip over a Unix socket to a
// peer that answers yes at once, and, apart, the look for unasked bytes
// that Ask makes on such a stream before each request (one ioctl).
func BenchmarkConnAskSocket(b *testing.B) {
	req := benchRequest()
	sock := serveUnix(b, func(c net.Conn) {
		defer c.Close()
		r := NewReader(c, Ejabberd, DefaultMaxLine)
		for {
			if _, err := r.ReadRequest(); err != nil {
				return
			}
			io.WriteString(c, Reply(Ejabberd, true))
		}
	})
	c, err := Dial(context.Background(), "unix", sock, Ejabberd)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.Run("ask", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ok, err := c.Ask(req); !ok || err != nil {
				b.Fatalf("Ask = %v, %v", ok, err)
			}
		}
	})
	b.Run("unasked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if c.unasked() {
				b.Fatal("unasked bytes")
			}
		}
	})
}
