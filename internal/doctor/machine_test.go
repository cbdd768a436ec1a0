package doctor

// doctor on this machine, against configurations like those the
// end-to-end tests give Debian's ejabberd and Prosody (the stdin/stdout
// helper for ejabberd, the module and the daemon for Prosody), with
// tokenauthd built from this tree serving as the daemon. Like the
// end-to-end tests it needs the real peers: with TOKENAUTHD_E2E=1 a
// missing one fails the test, otherwise it is skipped.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireMachine fails (TOKENAUTHD_E2E=1) or skips a test that needs root
// and Debian's ejabberd and prosody.
func requireMachine(t *testing.T) {
	t.Helper()
	missing := ""
	switch {
	case os.Geteuid() != 0:
		missing = "root"
	default:
		for _, p := range []string{"/usr/sbin/ejabberdctl", "/usr/bin/prosodyctl", "/usr/bin/lua5.4"} {
			if _, err := os.Stat(p); err != nil {
				missing = p
			}
		}
		for _, u := range []string{"ejabberd", "prosody"} {
			if _, err := user.Lookup(u); err != nil {
				missing = "user " + u
			}
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("TOKENAUTHD_E2E") == "1" {
		t.Fatalf("required test peer %s is missing (scripts/test runs as root and installs the peers)", missing)
	}
	t.Skipf("test peer %s missing; run scripts/test as root", missing)
}

// machineSetup is a tokenauthd set up for ejabberd's helper and Prosody's
// module, in a directory of its own outside /tmp (which ejabberd.service
// hides), with the daemon running.
type machineSetup struct {
	dir, bin, config, ejabberd, prosody, socket string
}

func writeFile(t *testing.T, path, text string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func lookupIDs(t *testing.T, name string) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

func setUpMachine(t *testing.T) *machineSetup {
	t.Helper()
	requireMachine(t)
	dir, err := os.MkdirTemp("/var/lib", "tokenauthd-doctor-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"", "bin", "etc", "run", "plugins", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := &machineSetup{dir: dir, bin: filepath.Join(dir, "bin", "tokenauthd"), config: filepath.Join(dir, "etc", "config.toml"),
		ejabberd: filepath.Join(dir, "etc", "ejabberd.yml"), prosody: filepath.Join(dir, "etc", "prosody.cfg.lua"),
		socket: filepath.Join(dir, "run", "tokenauthd.sock")}
	out, err := exec.Command("go", "build", "-o", m.bin, "github.com/tokenauthd/tokenauthd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, ejGID := lookupIDs(t, "ejabberd")
	// Read by ejabberd's helper (the README's recipe for it: root:ejabberd,
	// 0640) and by the daemon, which gives its socket to Prosody's group.
	writeFile(t, m.config, fmt.Sprintf(`[daemon]
socket = %q
socket_group = "prosody"

[hosts."localhost"]
token_secret = "doctor-test-secret-not-a-real-one"
otp_seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
`, m.socket), 0o640, 0, ejGID)
	// ejabberd's configuration as e2e_ejabberd_test.go writes it, with
	// its helper as stageHelper gives it.
	writeFile(t, m.ejabberd, fmt.Sprintf(`hosts:
  - localhost
loglevel: info
log_rotate_count: 0
listen:
  -
    port: 15223
    ip: "127.0.0.1"
    module: ejabberd_c2s
auth_method: [external]
extauth_program: %q
extauth_pool_size: 1
auth_use_cache: false
acl: {}
access_rules: {}
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
`, m.bin+" -config "+m.config), 0o644, 0, 0)
	module, err := os.ReadFile("../../prosody/mod_auth_tokenauthd.lua")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "plugins", "mod_auth_tokenauthd.lua"), string(module), 0o644, 0, 0)
	// Prosody's configuration as e2e_prosody_test.go writes it.
	writeFile(t, m.prosody, fmt.Sprintf(`-- written by the test
run_as_root = true
pidfile = %[1]q
data_path = %[2]q
plugin_paths = { %[3]q }
log = { { levels = { min = "debug" }, to = "file", filename = %[4]q } }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { 15222 }
c2s_direct_tls_ports = { }
modules_enabled = { "saslauth", "roster", "disco", "ping" }
modules_disabled = { "s2s", "offline" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "tokenauthd"
tokenauthd_socket = %[5]q
VirtualHost "localhost"
`, filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data"), filepath.Join(dir, "plugins"),
		filepath.Join(dir, "prosody.log"), m.socket), 0o644, 0, 0)
	m.startDaemon(t)
	return m
}

// startDaemon runs tokenauthd serve on the configuration until the test
// ends, and waits for its socket.
func (m *machineSetup) startDaemon(t *testing.T) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(m.bin, "serve", "-config", m.config)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Errorf("tokenauthd serve did not stop on SIGTERM")
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		if st, err := os.Stat(m.socket); err == nil && st.Mode()&os.ModeSocket != 0 {
			return
		}
		select {
		case <-done:
			t.Fatalf("tokenauthd serve exited: %s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokenauthd serve does not listen on %s: %s", m.socket, stderr.String())
		}
	}
}

// runMachine runs doctor on the real machine and returns its report and
// exit status.
func (m *machineSetup) runMachine(t *testing.T) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := Check(context.Background(), Options{Config: m.config, Ejabberd: m.ejabberd, Prosody: m.prosody, Stdout: &out})
	return out.String(), code
}

// problems returns the report's errors and warnings but the clock's, which
// depends on the machine.
func problems(report string) []string {
	var p []string
	for _, l := range strings.Split(report, "\n") {
		if (strings.HasPrefix(l, "error: ") || strings.HasPrefix(l, "warning: ")) && !strings.HasPrefix(l, "warning: clock: ") {
			p = append(p, l)
		}
	}
	return p
}

func TestMachine(t *testing.T) {
	m := setUpMachine(t)
	report, code := m.runMachine(t)
	if p := problems(report); len(p) > 0 || code != 0 {
		t.Fatalf("the end-to-end tests' setup: exit %d, problems:\n%s\nreport:\n%s", code, strings.Join(p, "\n"), report)
	}
	if strings.Contains(report, "doctor-test-secret") {
		t.Errorf("the report quotes a secret:\n%s", report)
	}

	// The same setup with mistakes, one file at a time.
	edit := func(path, old, new string) func() {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("%s has no %q", path, old)
		}
		if err := os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0); err != nil {
			t.Fatal(err)
		}
		return func() { os.WriteFile(path, b, 0) }
	}
	_, prosodyGID := lookupIDs(t, "prosody")
	mistakes := []struct {
		name    string
		make    func() (undo func())
		problem string
	}{
		{"the authentication cache left on", func() func() { return edit(m.ejabberd, "auth_use_cache: false\n", "") },
			"error: " + m.ejabberd + ": auth_use_cache: ejabberd's authentication cache (auth_use_cache) is not set, and is on by default for host localhost"},
		{"a pool of helpers", func() func() { return edit(m.ejabberd, "extauth_pool_size: 1", "extauth_pool_size: 3") },
			"extauth_pool_size: extauth_pool_size is 3 for host localhost"},
		{"FAST tokens", func() func() { return edit(m.ejabberd, "  mod_ping: {}\n", "  mod_ping: {}\n  mod_auth_fast: {}\n") },
			"modules: mod_auth_fast: mod_auth_fast is enabled for host localhost"},
		{"the module dials another socket", func() func() {
			return edit(m.prosody, "tokenauthd_socket = ", "tokenauthd_socket = \"/run/nowhere.sock\" -- ")
		},
			"tokenauthd_socket: host localhost dials /run/nowhere.sock, but the daemon listens on " + m.socket},
		{"Prosody's host without secrets", func() func() {
			return edit(m.prosody, `VirtualHost "localhost"`, `VirtualHost "localhost"`+"\nVirtualHost \"chat.localhost\"")
		},
			`VirtualHost "chat.localhost": authentication: chat.localhost authenticates with tokenauthd`},
		{"a socket in a group Prosody is not in", func() func() {
			if err := os.Chown(m.socket, -1, 0); err != nil {
				t.Fatal(err)
			}
			return func() { os.Chown(m.socket, -1, prosodyGID) }
		}, "error: " + m.prosody + ": tokenauthd_socket: Prosody's user prosody is not in root (the group of " + m.socket + ")"},
	}
	for _, mk := range mistakes {
		t.Run(mk.name, func(t *testing.T) {
			undo := mk.make()
			defer undo()
			report, code := m.runMachine(t)
			if code != 1 && strings.HasPrefix(mk.problem, "error") {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(report, mk.problem) {
				t.Errorf("no %q in the report:\n%s", mk.problem, report)
			}
		})
	}
}
