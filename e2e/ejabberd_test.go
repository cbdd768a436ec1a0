package e2e

// A real ejabberd for the end-to-end tests: the peer set's (Debian 12's
// 23.01 or Debian 13's 24.12: peers.Get). Each call starts its own ejabberd
// on its own node name, distribution port and c2s port, all on loopback,
// and stops it, with every process it started, when the test ends.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/fixture/peers"
)

// serverDir returns a new directory that every user may enter, outside
// /tmp and /home, which ejabberd.service hides from ejabberd (PrivateTmp,
// ProtectHome): where an admin would put what an XMPP server reads, and
// where doctor, which reads the machine's units, finds it visible. It is
// removed when the test ends.
func serverDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/lib", "tokenauthd-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ejabberdDir returns a new serverDir owned by the ejabberd user
// (ejabberdctl runs ejabberd as that user, and so its extauth_program).
// Put the helper and its configuration in it.
func ejabberdDir(t testing.TB) string {
	t.Helper()
	fixture.RequirePeer(t, peers.Get(t).Ejabberdctl)
	dir := serverDir(t)
	chownEjabberd(t, dir)
	return dir
}

// chownEjabberd gives path (recursively) to the ejabberd user.
func chownEjabberd(t testing.TB, path string) {
	t.Helper()
	u, err := user.Lookup("ejabberd")
	if err != nil {
		t.Fatalf("ejabberd user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// stageBinary copies the built tokenauthd into dir, where ejabberd can run
// it, and returns its path.
func stageBinary(t testing.TB, dir string) string {
	t.Helper()
	src, err := os.ReadFile(fixture.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tokenauthd")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// stageHelper copies the built tokenauthd and the given configuration into
// a directory ejabberd can read, and returns the extauth_program command
// line running it on that configuration, with extra arguments appended.
func stageHelper(t testing.TB, config string, extra ...string) string {
	t.Helper()
	dir := ejabberdDir(t)
	bin := stageBinary(t, dir)
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	chownEjabberd(t, dir)
	return strings.Join(append([]string{bin, "-config", cfg}, extra...), " ")
}

// ejabberdFiles are the files of an ejabberd for the end-to-end tests, as
// writeEjabberd writes them and startEjabberd runs them.
type ejabberdFiles struct {
	dir     string // etc/, spool/, logs/, in an ejabberdDir
	config  string // etc/ejabberd.yml
	port    int    // c2s, plain TCP, on 127.0.0.1
	node    string // the Erlang node's name
	pidFile string
}

// writeEjabberd writes the configuration of an ejabberd for the host
// "localhost" with external authentication by extauthProgram (a command
// line ejabberd runs through the shell, as the ejabberd user),
// extauth_pool_size poolSize and no authentication cache, listening on a
// free port of 127.0.0.1 with its own node name and distribution port;
// listen are more items of its listen list, in YAML.
func writeEjabberd(t testing.TB, extauthProgram string, poolSize int, listen ...string) *ejabberdFiles {
	t.Helper()
	fixture.RequirePeer(t, "/etc/ejabberd/inetrc")
	dir := ejabberdDir(t)
	for _, d := range []string{"etc", "spool", "logs"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	inetrc, err := os.ReadFile("/etc/ejabberd/inetrc")
	if err != nil {
		t.Fatal(err)
	}
	port, distPort := fixture.FreePort(t), fixture.FreePort(t)
	e := &ejabberdFiles{dir: dir, config: filepath.Join(dir, "etc", "ejabberd.yml"), port: port,
		node: fmt.Sprintf("tokenauthd%d@localhost", port), pidFile: filepath.Join(dir, "ejabberd.pid")}
	files := map[string]string{
		"etc/inetrc": string(inetrc),
		"etc/ejabberdctl.cfg": fmt.Sprintf(`ERLANG_NODE=%s
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -setcookie tokenauthdtestcookie"
ERL_DIST_PORT=%d
EJABBERD_PID_PATH=%s
INET_DIST_INTERFACE=127.0.0.1
`, e.node, distPort, e.pidFile),
		"etc/ejabberd.yml": fmt.Sprintf(`hosts:
  - localhost
loglevel: info
log_rotate_count: 0
listen:
  -
    port: %d
    ip: "127.0.0.1"
    module: ejabberd_c2s
%s
auth_method: [external]
extauth_program: %q
extauth_pool_size: %d
auth_use_cache: false
acl: {}
access_rules: {}
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
`, port, strings.Join(listen, "\n"), extauthProgram, poolSize),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	chownEjabberd(t, dir)
	return e
}

// startEjabberd starts ejabberd on writeEjabberd's files and returns its
// c2s port once its log says it has started, as the peer set's version.
// ejabberd and its helpers are stopped when the test ends; the test fails
// if they cannot be.
func startEjabberd(t testing.TB, extauthProgram string, poolSize int, listen ...string) (port int) {
	t.Helper()
	return runEjabberd(t, writeEjabberd(t, extauthProgram, poolSize, listen...), extauthProgram)
}

// ctl returns the ejabberdctl command for e's ejabberd with args.
func (e *ejabberdFiles) ctl(set peers.Set, args ...string) *exec.Cmd {
	etc := filepath.Join(e.dir, "etc")
	return exec.Command(set.Ejabberdctl, append([]string{
		"--config-dir", etc,
		"--config", e.config,
		"--ctl-config", filepath.Join(etc, "ejabberdctl.cfg"),
		"--spool", filepath.Join(e.dir, "spool"),
		"--logs", filepath.Join(e.dir, "logs"),
	}, args...)...)
}

// runEjabberd is startEjabberd on the files e.
func runEjabberd(t testing.TB, e *ejabberdFiles, extauthProgram string) (port int) {
	t.Helper()
	set := peers.Get(t)
	fixture.RequirePeer(t, set.Ejabberdctl)
	dir, port, node, pidFile := e.dir, e.port, e.node, e.pidFile
	ctl := func(args ...string) *exec.Cmd { return e.ctl(set, args...) }
	console, err := os.Create(filepath.Join(dir, "console.out"))
	if err != nil {
		t.Fatal(err)
	}
	fg := ctl("foreground")
	fg.Stdout, fg.Stderr = console, console
	// Its own process group, so that whatever is left of it can be killed
	// at once.
	fg.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { fg.Wait(); close(exited) }()

	t.Cleanup(func() {
		// SIGTERM to the Erlang VM stops ejabberd cleanly, as
		// `ejabberdctl stop` does, without starting another VM to ask.
		beam := readPID(pidFile)
		if beam <= 0 || syscall.Kill(beam, syscall.SIGTERM) != nil {
			if out, err := ctl("stop").CombinedOutput(); err != nil {
				t.Logf("ejabberdctl stop: %v\n%s", err, out)
			}
		}
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Errorf("ejabberd did not stop within 20 s: killing it")
		}
		syscall.Kill(-fg.Process.Pid, syscall.SIGKILL)
		if beam > 0 {
			syscall.Kill(beam, syscall.SIGKILL)
		}
		<-exited
		console.Close()
		// Nothing of this ejabberd may outlive the test: neither its
		// Erlang VM nor the helpers it ran (they end when their stdin
		// closes).
		beamLeft := func(cmdline []byte) bool { return bytes.Contains(cmdline, []byte(node)) }
		for _, match := range []func([]byte) bool{beamLeft, helperCommand(extauthProgram)} {
			if left := waitNoProcess(match, 10*time.Second); len(left) > 0 {
				t.Errorf("processes left behind: %v; killing them", left)
				for _, pid := range left {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if t.Failed() {
			dumpEjabberdLogs(t, dir)
		}
	})

	// Up when it listens and its log says it has started (a little after
	// it listens).
	deadline := time.Now().Add(60 * time.Second)
	listening := false
	for {
		if !listening {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
			if err == nil {
				c.Close()
				listening = true
			}
		}
		if listening {
			log, _ := os.ReadFile(filepath.Join(dir, "logs", "ejabberd.log"))
			started, err := set.EjabberdStarted(string(log))
			if err != nil {
				t.Fatal(err)
			}
			if started {
				return port
			}
		}
		select {
		case <-exited:
			dumpEjabberdLogs(t, dir)
			t.Fatalf("ejabberd exited before it started on %d", port)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			dumpEjabberdLogs(t, dir)
			t.Fatalf("ejabberd has not started on %d after 60 s (listening: %v)", port, listening)
		}
	}
}

// helperCommand returns a matcher of the command line of the helper
// processes ejabberd starts for extauthProgram: its words up to the first
// redirection, exactly (so that another process of the same binary, such
// as a daemon the helper talks to, does not match).
func helperCommand(extauthProgram string) func(cmdline []byte) bool {
	var want []byte
	for _, w := range strings.Fields(extauthProgram) {
		if strings.ContainsAny(w, "<>|;&") {
			break
		}
		want = append(append(want, w...), 0)
	}
	return func(cmdline []byte) bool { return bytes.Equal(cmdline, want) }
}

// processesMatching returns the PIDs of the processes whose command line
// (NUL-separated words, as in /proc/PID/cmdline) match says yes to.
func processesMatching(match func(cmdline []byte) bool) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && len(cmdline) > 0 && match(cmdline) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitNoProcess waits until no process matches, and returns those that
// still do after within.
func waitNoProcess(match func(cmdline []byte) bool, within time.Duration) []int {
	deadline := time.Now().Add(within)
	for {
		left := processesMatching(match)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(bytes.TrimSpace(b)))
	return pid
}

// dumpEjabberdLogs logs the tail of ejabberd's console and logs.
func dumpEjabberdLogs(t testing.TB, dir string) {
	t.Helper()
	for _, name := range []string{"console.out", "logs/ejabberd.log", "logs/error.log", "logs/crash.log"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(b) == 0 {
			continue
		}
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		t.Logf("--- %s ---\n%s", name, b)
	}
}

// The secrets of the end-to-end tests' host "localhost".
const (
	e2eSeed   = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	e2eSecret = "e2e token secret: not for production"
)

// e2eConfig is a configuration for the host "localhost" with the
// end-to-end secrets.
func e2eConfig() string {
	return fmt.Sprintf("[hosts.\"localhost\"]\ntoken_secret = %q\notp_seed = %q\n", e2eSecret, e2eSeed)
}

// TestEjabberdLogin logs in through a real ejabberd whose extauth_program is
// tokenauthd, with tokens minted by pyotp.
func TestEjabberdLogin(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:pyotp", "python:slixmpp")
	// The extauth_program line as the README writes it: framing named.
	program := stageHelper(t, e2eConfig(), "-protocol", "ejabberd")
	// The helper's stderr, its log, in a file of its own.
	logFile := filepath.Join(filepath.Dir(strings.Fields(program)[0]), "helper.log")
	port := startEjabberd(t, program+" 2>>"+logFile, 1)

	fresh := pyotpToken(t, e2eSeed, e2eSecret, "alice@localhost", 0, "")
	if !xmppLogin(t, "alice@localhost", fresh, port, "PLAIN") {
		t.Fatal("a fresh token was refused")
	}
	// extauth_pool_size: 1 is one helper process, the one that just
	// answered (and the one the test's cleanup makes sure ends).
	if helpers := processesMatching(helperCommand(program)); len(helpers) != 1 {
		t.Errorf("%d helper processes run %q, want 1", len(helpers), program)
	}
	// The same token a second time: ejabberd has no cache
	// (auth_use_cache: false), so tokenauthd sees the replay and refuses.
	if xmppLogin(t, "alice@localhost", fresh, port, "PLAIN") {
		t.Error("a replayed token was accepted")
	}
	// Bob's token, valid for bob, presented as alice's password.
	bobs := pyotpToken(t, e2eSeed, e2eSecret, "bob@localhost", 0, "")
	if xmppLogin(t, "alice@localhost", bobs, port, "PLAIN") {
		t.Error("another user's token was accepted")
	}
	// A token minted two minutes ago: its OTP is out of the window.
	old := pyotpToken(t, e2eSeed, e2eSecret, "alice@localhost", time.Now().Unix()-120, "")
	if xmppLogin(t, "alice@localhost", old, port, "PLAIN") {
		t.Error("a 2-minute-old token was accepted")
	}
	// Bob's own token still works: the refusals above did not consume it,
	// and the helper is still in sync after them.
	if !xmppLogin(t, "bob@localhost", bobs, port, "PLAIN") {
		t.Error("bob's fresh token was refused after the refusals")
	}

	// One refusal line per refused login, with its reason, and never a
	// token or a part of one.
	logText, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"reason=replayed user=alice", "reason=bad_signature user=alice", "reason=otp_out_of_window user=alice"} {
		if !strings.Contains(string(logText), want) {
			t.Errorf("helper log lacks %q:\n%s", want, logText)
		}
	}
	for _, tok := range []string{fresh, bobs, old} {
		otpNonce, sig, _ := strings.Cut(tok, " ")
		if strings.Contains(string(logText), otpNonce[8:]) || strings.Contains(string(logText), sig) || strings.Contains(string(logText), otpNonce[:8]) {
			t.Errorf("helper log holds a token part:\n%s", logText)
		}
	}
}
