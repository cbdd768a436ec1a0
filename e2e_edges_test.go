//go:build linux

package main

// End-to-end tests of the binary at its edges: log lines fed by clients.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runBinaryIn runs the binary with args, stdin, and extra environment,
// within a generous bound (a hang fails the test, it is no measure), and
// returns its exit status, stdout and stderr.
func runBinaryIn(t *testing.T, stdin string, environ []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = append(os.Environ(), environ...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%q did not end within 60 s", args)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// TestBinaryLongUserNameLogCut: a refused request with a 60 KB user name
// logs a line of bounded size, marked as cut, on the helper's stderr.
func TestBinaryLongUserNameLogCut(t *testing.T) {
	user := strings.Repeat("u", 60_000)
	code, out, errOut := runBinaryIn(t, ejFrame("auth:"+user+":"+testHost+":x"), nil, "-config", writeTestConfig(t, t.TempDir(), ""))
	if code != 0 || out != string(frameNo) {
		t.Fatalf("exit %d, stdout %x", code, out)
	}
	checkCutLog(t, errOut, 60_000)
}
