package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/logs"
)

// TestSharedStdoutStderr: when stderr is the very file stdout is (one
// pipe, as with 2>&1), only replies reach it, and the log goes to the
// system log, each line at its level's priority (in-process).
func TestSharedStdoutStderr(t *testing.T) {
	sock, msgs := listenSysLog(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cfg := fixture.RFCConfig(t, "[log]\nlevel = \"debug\"\n")
	in := "isuser:a:example.org\nauth:admin:example.org:x\nauth:" + strings.Repeat("u", 3000) + ":example.org:x\n"
	e := &cli.Env{Stdin: strings.NewReader(in), Stdout: w, Stderr: w, SysLog: sock}
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), e, []string{"-config", cfg, "-protocol", "generic"})
		w.Close()
	}()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 || string(out) != "1\n0\n0\n" {
		t.Fatalf("exit %d, the shared pipe read %q, want only the replies", code, out)
	}
	// LOG_DAEMON (3) * 8 + LOG_INFO (6) = 30.
	want := []string{"<30>", "tokenauthd started", "<30>", "refused", "user=admin", "<30>", "refused", logs.CutMarker + "3000]"}
	var got []string
	for len(want) > 0 {
		select {
		case m := <-msgs:
			got = append(got, m)
			for len(want) > 0 && strings.Contains(m, want[0]) {
				m = m[strings.Index(m, want[0])+len(want[0]):]
				want = want[1:]
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the system log got %q; still missing %q", got, want)
		}
	}
}

// TestSharedStdoutStderrUsage: a bad flag's usage message does not reach a
// stdout that stderr shares either.
func TestSharedStdoutStderrUsage(t *testing.T) {
	for _, args := range [][]string{{"-bogus"}, {"connect", "-bogus"}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		code := run(context.Background(), &cli.Env{Stdin: strings.NewReader(""), Stdout: w, Stderr: w, SysLog: "/nonexistent/log"}, args)
		w.Close()
		out, _ := io.ReadAll(r)
		r.Close()
		if code != 2 || len(out) != 0 {
			t.Errorf("%q: exit %d, stdout %q; want 2 and nothing", args, code, out)
		}
	}
}

// listenSysLog listens on a datagram socket standing for /dev/log and
// returns its path and the channel of the messages it receives.
func listenSysLog(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		b := make([]byte, 65536)
		for {
			n, err := c.Read(b)
			if err != nil {
				return
			}
			ch <- string(b[:n])
		}
	}()
	return path, ch
}
