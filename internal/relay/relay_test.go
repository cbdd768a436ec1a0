package relay

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/daemon/daemontest"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// relayProc is a relay run in-process, as `tokenauthd connect ARGS`, with
// pipes for its stdin and stdout.
type relayProc struct {
	in   *io.PipeWriter
	out  *bufio.Reader
	done chan int
}

func startRelay(t *testing.T, args ...string) *relayProc {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &relayProc{in: inW, out: bufio.NewReader(outR), done: make(chan int, 1)}
	e := &cli.Env{Stdin: inR, Stdout: outW, Stderr: fixture.Writer(t)}
	go func() {
		p.done <- Run(context.Background(), e.KeepRepliesAlone(), args)
		outW.Close()
	}()
	t.Cleanup(func() { inW.Close() })
	return p
}

// askFrame sends an ejabberd frame and returns the reply.
func (p *relayProc) askFrame(t testing.TB, body string) []byte {
	t.Helper()
	if _, err := p.in.Write([]byte(fixture.Frame(body))); err != nil {
		t.Fatal(err)
	}
	reply, err := fixture.ReadReply(p.out, protocol.Ejabberd)
	if err != nil {
		t.Fatalf("reading the relay's reply: %v", err)
	}
	return reply
}

// askLine sends a generic line and returns the reply line.
func (p *relayProc) askLine(t testing.TB, line string) string {
	t.Helper()
	if _, err := io.WriteString(p.in, fixture.Line(line)); err != nil {
		t.Fatal(err)
	}
	s, err := fixture.ReadLineReply(p.out)
	if err != nil {
		t.Fatalf("reading the relay's reply: %v", err)
	}
	return s
}

// exit closes the relay's stdin and returns its exit status.
func (p *relayProc) exit(t testing.TB) int {
	t.Helper()
	p.in.Close()
	io.Copy(io.Discard, p.out)
	return <-p.done
}

// TestConnectRelaysBothFramings: requests pass through the relay in the
// peer's framing; replays are refused across relays.
func TestConnectRelaysBothFramings(t *testing.T) {
	sock := startDaemon(t)
	ej := startRelay(t, "-socket", sock, "-config", fixture.WriteConfig(t, t.TempDir(), ""))
	gen := startRelay(t, "-socket", sock)

	tok := fixture.Token(t, "alice")
	if got := ej.askFrame(t, "auth:alice:"+fixture.Host+":"+tok); string(got) != string(fixture.FrameYes) {
		t.Fatalf("fresh token = %x, want %x", got, fixture.FrameYes)
	}
	if got := gen.askLine(t, "auth:alice:"+fixture.Host+":"+tok); got != fixture.LineNo {
		t.Errorf("replay through another relay = %q, want 0", got)
	}
	if got := ej.askFrame(t, "auth:alice:"+fixture.Host+":"+tok); string(got) != string(fixture.FrameNo) {
		t.Errorf("replay through the same relay = %x, want %x", got, fixture.FrameNo)
	}
	tok2 := fixture.Token(t, "bob")
	if got := gen.askLine(t, "auth:bob:"+fixture.Host+":"+tok2); got != fixture.LineYes {
		t.Errorf("fresh token, generic = %q, want 1", got)
	}
	// Malformed requests are answered no by the relay itself and do not
	// desynchronise anything; a line that is not a request is one.
	if got := gen.askLine(t, fixture.Frame("hello")); got != fixture.LineNo {
		t.Errorf("garbage line = %q, want 0", got)
	}
	if got := gen.askLine(t, "isuser:bob:"+fixture.Host); got != fixture.LineYes {
		t.Errorf("isuser after garbage = %q, want 1", got)
	}
	if got := ej.askFrame(t, "nonsense"); string(got) != string(fixture.FrameNo) {
		t.Errorf("bad frame = %x, want %x", got, fixture.FrameNo)
	}
	if got := ej.askFrame(t, "isuser:bob:"+fixture.Host); string(got) != string(fixture.FrameYes) {
		t.Errorf("isuser after a bad frame = %x, want %x", got, fixture.FrameYes)
	}
	if code := ej.exit(t); code != 0 {
		t.Errorf("exit status at EOF = %d, want 0", code)
	}
	if code := gen.exit(t); code != 0 {
		t.Errorf("exit status at EOF = %d, want 0", code)
	}
}

// TestConnectWithoutDaemon: with no daemon, each request is answered no
// within the bound and the relay keeps going; once a daemon listens, and
// again after it restarts, requests go through.
func TestConnectWithoutDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "later.sock")
	const bound = 300 * time.Millisecond
	p := startRelay(t, "-socket", sock, "-timeout", bound.String())
	for i := 0; i < 2; i++ {
		start := time.Now()
		if got := p.askFrame(t, "isuser:alice:"+fixture.Host); string(got) != string(fixture.FrameNo) {
			t.Fatalf("no daemon: reply %x, want %x", got, fixture.FrameNo)
		}
		// The bound is the feature: generous slack, never less than it.
		if el := time.Since(start); el > bound+2*time.Second {
			t.Fatalf("no daemon: answered after %v, bound %v", el, bound)
		}
	}
	stop := startDaemonAt(t, sock)
	if got := p.askFrame(t, "isuser:alice:"+fixture.Host); string(got) != string(fixture.FrameYes) {
		t.Fatalf("daemon started: reply %x, want %x", got, fixture.FrameYes)
	}
	tok := fixture.Token(t, "alice")
	if got := p.askFrame(t, "auth:alice:"+fixture.Host+":"+tok); string(got) != string(fixture.FrameYes) {
		t.Fatalf("daemon started: fresh token %x, want %x", got, fixture.FrameYes)
	}
	// A restart leaves the relay holding a dead connection: it redials.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	startDaemonAt(t, sock)
	if got := p.askFrame(t, "isuser:alice:"+fixture.Host); string(got) != string(fixture.FrameYes) {
		t.Fatalf("daemon restarted: reply %x, want %x", got, fixture.FrameYes)
	}
	if code := p.exit(t); code != 0 {
		t.Errorf("exit status = %d, want 0", code)
	}
}

// TestConnectBadDaemonReply: a peer on the socket that answers with
// anything but a reply gets the request answered no, and the relay goes on
// with a new connection.
func TestConnectBadDaemonReply(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "bad.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 256)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					// A reply in the wrong framing, then junk: never a
					// valid ejabberd reply.
					io.WriteString(c, fixture.LineYes+string(fixture.FrameYes)+"junk")
				}
			}()
		}
	}()
	p := startRelay(t, "-socket", sock, "-timeout", "200ms")
	for i := 0; i < 3; i++ {
		if got := p.askFrame(t, "isuser:alice:"+fixture.Host); string(got) != string(fixture.FrameNo) {
			t.Fatalf("bad daemon reply relayed as %x, want %x", got, fixture.FrameNo)
		}
	}
}

// waitingPeer is a scripted XMPP server that waits for its replies: it
// hands the relay one chunk of input per Read, and before each chunk checks
// that every reply it is owed has been written. A relay that holds a reply
// back while it waits for more input would leave a real peer waiting until
// it times out, and then answer its next request with the stale reply.
type waitingPeer struct {
	t      *testing.T
	name   string
	chunks []string // input, one chunk per Read
	owed   []string // owed[i]: all output due before chunk i is sent
	out    bytes.Buffer
}

func (p *waitingPeer) Read(b []byte) (int, error) {
	if len(p.chunks) == 0 {
		return 0, io.EOF
	}
	if got := p.out.String(); got != p.owed[0] {
		p.t.Errorf("%s: before sending %q the peer has %q, want %q", p.name, p.chunks[0], got, p.owed[0])
		p.chunks = nil
		return 0, io.EOF
	}
	n := copy(b, p.chunks[0])
	p.chunks, p.owed = p.chunks[1:], p.owed[1:]
	return n, nil
}

func (p *waitingPeer) Write(b []byte) (int, error) { return p.out.Write(b) }

// TestConnectRepliesBeforeWaiting: the relay passes each reply on before it
// waits for more input, whatever followed the request in the same read.
func TestConnectRepliesBeforeWaiting(t *testing.T) {
	sock := startDaemon(t)
	yes, no := string(fixture.FrameYes), string(fixture.FrameNo)
	l1, l0 := fixture.LineYes, fixture.LineNo
	// Users are the application's: isuser says yes to any user of a
	// configured host, and no elsewhere.
	isuser := func(u string) string { return "isuser:" + u + ":" + fixture.Host }
	other := "isuser:alice:other.invalid"
	tests := []struct {
		name   string
		chunks []string
		owed   []string
		out    string
	}{
		{"empty line after", []string{isuser("alice") + "\n\n", other + "\n"}, []string{"", l1}, l1 + l0},
		{"stray cr after", []string{isuser("alice") + "\n\r", "\n" + other + "\n"}, []string{"", l1}, l1 + l0},
		{"part of the next line", []string{isuser("alice") + "\nisus", "er:alice:other.invalid\n"}, []string{"", l1}, l1 + l0},
		{"part of the next frame", []string{fixture.Frame(isuser("alice")) + fixture.Frame(other)[:1], fixture.Frame(other)[1:]}, []string{"", yes}, yes + no},
		// The first request names a command, or auto would not take the
		// stream for lines.
		{"bad request then part", []string{"auth:bogus\nisuser:al", "ice:" + fixture.Host + "\n"}, []string{"", l0}, l0 + l1},
	}
	for _, tt := range tests {
		p := &waitingPeer{t: t, name: tt.name, chunks: tt.chunks, owed: tt.owed}
		e := &cli.Env{Stdin: p, Stdout: p, Stderr: fixture.Writer(t)}
		if code := Run(context.Background(), e.KeepRepliesAlone(), []string{"-socket", sock}); code != 0 {
			t.Errorf("%s: exit status %d, want 0", tt.name, code)
		}
		if got := p.out.String(); got != tt.out {
			t.Errorf("%s: wrote %q, want %q", tt.name, got, tt.out)
		}
	}
}

// TestConnectLogSettings: the relay logs as [log] says, format and level,
// and refuses a bad [log] as the daemon does.
func TestConnectLogSettings(t *testing.T) {
	sock := startDaemon(t)
	tests := []struct {
		name, log string
		code      int
		check     func(stderr string) bool
	}{
		{"json", "format = \"json\"", 0, func(s string) bool {
			return strings.HasPrefix(s, "{") && strings.Contains(s, `"msg":"connected to the daemon"`)
		}},
		{"text", "level = \"debug\"", 0, func(s string) bool { return strings.Contains(s, "msg=\"connected to the daemon\"") }},
		{"error level", "level = \"error\"", 0, func(s string) bool { return s == "" }},
		{"bad format", "format = \"xml\"", 1, func(s string) bool { return strings.Contains(s, "log.format") }},
		{"bad level", "level = \"loud\"", 1, func(s string) bool { return strings.Contains(s, "log.level") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fixture.WriteConfig(t, t.TempDir(), "[log]\n"+tc.log+"\n")
			var out, errOut bytes.Buffer
			e := &cli.Env{Stdin: strings.NewReader(fixture.Line("isuser:alice:" + fixture.Host)), Stdout: &out, Stderr: &errOut}
			code := Run(context.Background(), e.KeepRepliesAlone(), []string{"-config", cfg, "-socket", sock})
			if code != tc.code || !tc.check(errOut.String()) {
				t.Fatalf("exit %d, log %q", code, errOut.String())
			}
			if want := map[int]string{0: fixture.LineYes, 1: ""}[tc.code]; out.String() != want {
				t.Fatalf("stdout %q, want %q", out.String(), want)
			}
		})
	}
}

// startDaemon runs an in-process daemon for fixture.Host on a socket in a
// temporary directory, and returns the socket.
func startDaemon(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	startDaemonAt(t, sock)
	return sock
}

// startDaemonAt runs an in-process daemon for fixture.Host on sock, and
// returns the function that stops it.
func startDaemonAt(t *testing.T, sock string) (stop func() error) {
	t.Helper()
	return daemontest.Start(t, fixture.WriteConfig(t, t.TempDir(), ""), sock, nil)
}

// TestConnectLogsTheCause: a relay that cannot reach the daemon logs why
// (the socket is missing, or is no socket), for every refused request, not
// the timeout of its last attempt.
func TestConnectLogsTheCause(t *testing.T) {
	dir := t.TempDir()
	notSocket := filepath.Join(dir, "file")
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ socket, cause string }{
		{filepath.Join(dir, "missing.sock"), "no such file or directory"},
		{notSocket, "connection refused"},
	} {
		var logs fixture.Buffer
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan int, 1)
		go func() {
			done <- Run(context.Background(), &cli.Env{Stdin: inR, Stdout: outW, Stderr: &logs},
				[]string{"-socket", tc.socket, "-timeout", "300ms", "-protocol", "generic"})
			outW.Close()
		}()
		out := bufio.NewReader(outR)
		for i := range 2 {
			io.WriteString(inW, fixture.Line("isuser:alice:"+fixture.Host))
			if r, err := fixture.ReadLineReply(out); err != nil || r != fixture.LineNo {
				t.Fatalf("%s: reply %q, %v; want no", tc.socket, r, err)
			}
			if n := strings.Count(logs.String(), tc.cause); n != i+1 {
				t.Errorf("%s: after %d requests, %d log lines give the cause %q:\n%s", tc.socket, i+1, n, tc.cause, logs.String())
			}
		}
		inW.Close()
		<-done
	}
}

// readCounter counts the reads of a stream that returned bytes.
type readCounter struct {
	r     io.Reader
	reads atomic.Int64
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.reads.Add(1)
	}
	return n, err
}

// TestConnectForwardsTogether: requests that reach the relay together go
// to the daemon together, in one write, and their replies come back in
// order: one wait for the daemon for all of them, not one each. A peer
// that sends one request at a time, as ejabberd does, is unaffected.
func TestConnectForwardsTogether(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := make(chan *readCounter, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		rc := &readCounter{r: c}
		served <- rc
		// Yes to alice, no to everyone else: the replies' order shows.
		srv := &protocol.Server{Mode: protocol.Ejabberd, Handler: protocol.HandlerFunc(
			func(_ context.Context, req protocol.Request) bool { return req.User == "alice" })}
		srv.Serve(context.Background(), rc, c)
	}()
	p := startRelay(t, "-socket", sock)
	if got := p.askFrame(t, "isuser:alice:"+fixture.Host); string(got) != string(fixture.FrameYes) {
		t.Fatalf("first request: %x", got)
	}
	rc := <-served
	before := rc.reads.Load()
	const n = 20
	var in, want bytes.Buffer
	for i := range n {
		user := []string{"alice", "bob"}[i%3/2]
		in.WriteString(fixture.Frame("isuser:" + user + ":" + fixture.Host))
		want.Write(map[bool][]byte{true: fixture.FrameYes, false: fixture.FrameNo}[user == "alice"])
	}
	if _, err := p.in.Write(in.Bytes()); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(p.out, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("replies %x, want %x", got, want.Bytes())
	}
	if reads := rc.reads.Load() - before; reads > 2 {
		t.Errorf("the daemon read %d requests arriving together in %d reads, want 1 (2 at most)", n, reads)
	}
}

// doubleAnswerer listens on a Unix socket as a misbehaving daemon: it
// answers the first request of all with yes twice, the second yes sent
// (if apart) once the test says so, and every later request with no.
type doubleAnswerer struct {
	sock       string
	apart      bool
	sendSecond chan struct{} // closed by the test
	sent       chan struct{} // closed once the second yes is written
}

func startDoubleAnswerer(t *testing.T, apart bool) *doubleAnswerer {
	t.Helper()
	d := &doubleAnswerer{sock: filepath.Join(t.TempDir(), "d.sock"), apart: apart,
		sendSecond: make(chan struct{}), sent: make(chan struct{})}
	l, err := net.Listen("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	first := make(chan struct{}, 1)
	first <- struct{}{}
	yes, no := string(fixture.FrameYes), string(fixture.FrameNo)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := protocol.NewReader(c, protocol.Ejabberd, protocol.DefaultMaxLine)
				for {
					if _, err := r.ReadRequest(); err != nil {
						return
					}
					select {
					case <-first:
						if !d.apart {
							io.WriteString(c, yes+yes)
							close(d.sent)
							continue
						}
						io.WriteString(c, yes)
						<-d.sendSecond
						io.WriteString(c, yes)
						close(d.sent)
					default:
						io.WriteString(c, no)
					}
				}
			}()
		}
	}()
	return d
}

// TestConnectUnaskedReply: a daemon that answers alice's request twice
// (yes, yes) and mallory's with no: the relay never takes the second yes
// for mallory's answer. It drops the connection, answers no, and logs it.
func TestConnectUnaskedReply(t *testing.T) {
	for _, apart := range []bool{false, true} {
		t.Run(fmt.Sprintf("apart=%v", apart), func(t *testing.T) {
			d := startDoubleAnswerer(t, apart)
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			var logs fixture.Buffer
			e := &cli.Env{Stdin: inR, Stdout: outW, Stderr: &logs}
			done := make(chan int, 1)
			go func() {
				done <- Run(context.Background(), e.KeepRepliesAlone(), []string{"-socket", d.sock, "-timeout", "2s"})
				outW.Close()
			}()
			p := &relayProc{in: inW, out: bufio.NewReader(outR), done: done}
			alice := p.askFrame(t, "auth:alice:"+fixture.Host+":t")
			if apart {
				if string(alice) != string(fixture.FrameYes) {
					t.Errorf("alice's one answer relayed as %x", alice)
				}
				close(d.sendSecond)
			} else if string(alice) != string(fixture.FrameNo) {
				t.Errorf("two answers to alice's request relayed as %x, want no", alice)
			}
			<-d.sent
			if got := p.askFrame(t, "auth:mallory:"+fixture.Host+":t"); string(got) != string(fixture.FrameNo) {
				t.Errorf("mallory's request answered %x, want no", got)
			}
			if code := p.exit(t); code != 0 {
				t.Errorf("exit %d", code)
			}
			if !strings.Contains(logs.String(), "nobody asked") {
				t.Errorf("no log line of the unasked reply:\n%s", logs.String())
			}
		})
	}
}

// TestConnectBatchUnasked: a daemon's side that answers a batch once more
// than it was asked gets every request of the batch answered no, and none
// of them sent again (a second send would spend its token twice).
func TestConnectBatchUnasked(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var asked atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := protocol.NewReader(c, protocol.Ejabberd, 0)
				for {
					if _, err := r.ReadRequest(); err != nil {
						return
					}
					// Yes to every request, and a yes nobody asked for
					// with the answer to the second of all.
					reply := fixture.FrameYes
					if asked.Add(1) == 2 {
						reply = append(append([]byte{}, reply...), fixture.FrameYes...)
					}
					if _, err := c.Write(reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	p := startRelay(t, "-socket", sock)
	// Two requests that arrive together: one batch.
	in := fixture.Frame("isuser:alice:"+fixture.Host) + fixture.Frame("isuser:mallory:"+fixture.Host)
	if _, err := io.WriteString(p.in, in); err != nil {
		t.Fatal(err)
	}
	for i, who := range []string{"alice", "mallory"} {
		reply, err := fixture.ReadReply(p.out, protocol.Ejabberd)
		if err != nil {
			t.Fatal(err)
		}
		if string(reply) != string(fixture.FrameNo) {
			t.Errorf("request %d (%s) answered %x after a reply nobody asked for, want no", i, who, reply)
		}
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("the daemon's side was asked %d times, want 2: a batch met by an unasked reply is not sent again", n)
	}
	p.exit(t)
}
