package e2e

// What stalled connections cost the daemon: N clients each send all but
// the last 535 bytes of a 65,535-byte ejabberd frame and stop. Not in
// the default suite; run it by hand, for BENCHMARKS.md:
//
//	TOKENAUTHD_STALLED=4000 go test -run TestStalledConnections -v .
//
// TOKENAUTHD_STALLED_BIN runs another tokenauthd binary instead of this
// tree's (an older one, for a before/after figure), and
// TOKENAUTHD_STALLED_DAEMON adds keys to its [daemon] section, e.g.
// "max_connections = 5000" to measure what each connection costs rather
// than how many the daemon keeps.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

func TestStalledConnections(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("TOKENAUTHD_STALLED"))
	if err != nil || n <= 0 {
		t.Skip("set TOKENAUTHD_STALLED to a number of connections (e.g. 4000) to measure them")
	}
	bin := os.Getenv("TOKENAUTHD_STALLED_BIN")
	if bin == "" {
		bin = fixture.Binary(t)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	cfg := fixture.WriteConfig(t, dir, "[daemon]\n"+strings.ReplaceAll(os.Getenv("TOKENAUTHD_STALLED_DAEMON"), `\n`, "\n")+"\n")
	cmd := exec.Command(bin, "serve", "-config", cfg, "-socket", sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if i == 500 {
			t.Fatal("the daemon does not listen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	idle := settledRSS(t, pid)

	start := append([]byte{0xff, 0xff}, strings.Repeat("x", 65_000)...)
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		c.Write(start)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	stalled := settledRSS(t, pid)
	open := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && os.IsTimeout(err) {
			open++ // not closed by the daemon
		}
	}
	t.Logf("%s: idle %d KiB; %d stalled connections (%d kept open by the daemon): %d KiB, %.1f KiB per kept connection",
		bin, idle, n, open, stalled, float64(stalled-idle)/float64(max(open, 1)))
}

// settledRSS waits until the process's RSS stops growing (two samples half
// a second apart within 1%, or 20 s) and returns it in KiB.
func settledRSS(t *testing.T, pid int) int64 {
	t.Helper()
	prev := rssKB(t, pid)
	for i := 0; i < 40; i++ {
		time.Sleep(500 * time.Millisecond)
		cur := rssKB(t, pid)
		if cur-prev <= prev/100 {
			return cur
		}
		prev = cur
	}
	fmt.Fprintln(os.Stderr, "RSS still growing after 20 s")
	return prev
}
