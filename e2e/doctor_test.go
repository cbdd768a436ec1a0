package e2e

// `tokenauthd doctor` on this machine, against the very files the
// end-to-end tests give the real ejabberd and Prosody, with the daemon
// they use running. doctor reads the machine's systemd units as well:
// ejabberd.service hides /tmp and /home from ejabberd, so the files are
// where serverDir puts every server's files, under /var/lib.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// doctorFindings returns a doctor report's findings, notes of what it did
// not check included, but the clock's, which depend on the machine.
func doctorFindings(report string) []string {
	var f []string
	for _, l := range strings.Split(report, "\n") {
		severity, rest, _ := strings.Cut(l, ": ")
		if (severity == "error" || severity == "warning" || severity == "note") && !strings.HasPrefix(rest, "clock: ") {
			f = append(f, l)
		}
	}
	return f
}

// TestDoctorOnE2ESetup: doctor finds nothing wrong with ejabberd's
// configuration as TestEjabberdLogin writes it (the stdin/stdout helper
// stageHelper stages, a pool of one), Prosody's as TestProsodyModule
// writes it (the module, talking to the daemon's socket) and the daemon's,
// run by startServe; and it finds each mistake made in them, one at a
// time.
func TestDoctorOnE2ESetup(t *testing.T) {
	// doctor reads Prosody's configuration with the machine's Prosody.
	fixture.RequirePeer(t, "/usr/bin/prosodyctl", "/usr/bin/lua5.4")
	ejabberd := writeEjabberd(t, stageHelper(t, e2eConfig()+"isuser = \"seen\"\n", "-protocol", "ejabberd"), 1).config
	dir := serverDir(t)
	sock := filepath.Join(dir, "tokenauthd.sock")
	// The daemon gives its socket to Prosody's group, as the README's
	// Prosody setup does.
	cfg := fixture.WriteFile(t, filepath.Join(dir, "config.toml"),
		fmt.Sprintf("[daemon]\nsocket = %q\nsocket_group = \"prosody\"\n", sock)+prosodyConfig()+"isuser = \"seen\"\n")
	startServe(t, cfg, sock)
	prosody, _ := writeProsody(t, dir, sock)
	doctor := func(t *testing.T) (report string, code int) {
		t.Helper()
		out, errOut, code := runBinary(t, nil, "doctor", "-config", cfg, "-ejabberd", ejabberd, "-prosody", prosody)
		if len(errOut) > 0 {
			t.Errorf("doctor's stderr: %s", errOut)
		}
		return string(out), code
	}

	report, code := doctor(t)
	if f := doctorFindings(report); len(f) > 0 || code != 0 {
		t.Fatalf("the end-to-end tests' setup: exit %d, findings:\n%s\nreport:\n%s", code, strings.Join(f, "\n"), report)
	}
	t.Logf("report:\n%s", report)
	for _, secret := range []string{e2eSecret, prosodySecret} {
		if strings.Contains(report, secret) {
			t.Errorf("the report quotes a secret:\n%s", report)
		}
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
	mistakes := []struct {
		name    string
		make    func() (undo func())
		problem string
	}{
		{"the authentication cache left on", func() func() { return edit(ejabberd, "auth_use_cache: false\n", "") },
			"error: " + ejabberd + ": auth_use_cache: ejabberd's authentication cache (auth_use_cache) is not set, and is on by default for host localhost"},
		{"a pool of helpers", func() func() { return edit(ejabberd, "extauth_pool_size: 1", "extauth_pool_size: 3") },
			"extauth_pool_size: extauth_pool_size is 3 for host localhost"},
		{"FAST tokens", func() func() { return edit(ejabberd, "  mod_ping: {}\n", "  mod_ping: {}\n  mod_auth_fast: {}\n") },
			"modules: mod_auth_fast: mod_auth_fast is enabled for host localhost"},
		{"every name exists", func() func() { return edit(cfg, `isuser = "seen"`, `isuser = true`) },
			"warning: " + cfg + `: host "localhost": isuser = true (or unset): every name exists`},
		{"the module dials another socket", func() func() {
			return edit(prosody, "tokenauthd_socket = ", "tokenauthd_socket = \"/run/nowhere.sock\" -- ")
		},
			"tokenauthd_socket: host localhost dials /run/nowhere.sock, but the daemon listens on " + sock},
		{"Prosody's host without secrets", func() func() {
			return edit(prosody, `VirtualHost "localhost"`, `VirtualHost "localhost"`+"\nVirtualHost \"chat.localhost\"")
		},
			`VirtualHost "chat.localhost": authentication: chat.localhost authenticates with tokenauthd`},
		{"a socket in a group Prosody is not in", func() func() {
			fi, err := os.Stat(sock)
			if err != nil {
				t.Fatal(err)
			}
			gid := int(fi.Sys().(*syscall.Stat_t).Gid)
			if err := os.Chown(sock, -1, 0); err != nil {
				t.Fatal(err)
			}
			return func() { os.Chown(sock, -1, gid) }
		}, "error: " + prosody + ": tokenauthd_socket: Prosody's user prosody is not in root (the group of " + sock + ")"},
	}
	for _, mk := range mistakes {
		t.Run(mk.name, func(t *testing.T) {
			undo := mk.make()
			defer undo()
			report, code := doctor(t)
			if code != 1 && strings.HasPrefix(mk.problem, "error") {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(report, mk.problem) {
				t.Errorf("no %q in the report:\n%s", mk.problem, report)
			}
		})
	}
}
