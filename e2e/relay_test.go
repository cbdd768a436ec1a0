package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// TestConnectUnaskedReply: `tokenauthd connect` before a peer on the
// daemon's socket that answers alice's request twice (yes, then yes once
// alice's answer has gone back to ejabberd) and every later request with
// no. The relay must answer mallory no, not with the yes it was never
// owed, and log the unasked reply.
func TestConnectUnaskedReply(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	sendSecond, sent := make(chan struct{}), make(chan struct{})
	yes, no := string(fixture.FrameYes), string(fixture.FrameNo)
	go func() {
		first := true
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(first bool) {
				defer c.Close()
				r := protocol.NewReader(c, protocol.Ejabberd, protocol.DefaultMaxLine)
				for {
					if _, err := r.ReadRequest(); err != nil {
						return
					}
					if first {
						io.WriteString(c, yes)
						<-sendSecond
						io.WriteString(c, yes)
						close(sent)
						first = false
						continue
					}
					io.WriteString(c, no)
				}
			}(first)
			first = false
		}
	}()

	cmd := exec.Command(fixture.Binary(t), "connect", "-socket", sock, "-timeout", "2s")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	out := bufio.NewReader(outPipe)
	ask := func(body string) string {
		t.Helper()
		if _, err := io.WriteString(in, fixture.Frame(body)); err != nil {
			t.Fatal(err)
		}
		reply, err := fixture.ReadReply(out, protocol.Ejabberd)
		if err != nil {
			t.Fatalf("reading connect's reply: %v", err)
		}
		return string(reply)
	}
	if got := ask("auth:alice:" + fixture.Host + ":t"); got != yes {
		t.Fatalf("alice's one answer relayed as %x", got)
	}
	close(sendSecond)
	<-sent
	if got := ask("auth:mallory:" + fixture.Host + ":t"); got != no {
		t.Errorf("mallory's request answered %x, want no: the reply owed to nobody was taken for hers", got)
	}
	in.Close()
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("connect: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connect still running 10 s after the end of its input")
	}
	if !strings.Contains(logs.String(), "nobody asked") {
		t.Errorf("no log line of the unasked reply:\n%s", logs.String())
	}
}
