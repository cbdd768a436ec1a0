package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const systemdAnalyze = "/usr/bin/systemd-analyze"

// stageUnits copies systemd/'s units into a temporary directory, with
// ExecStart pointing at the built binary (verify wants it to exist), and
// returns their paths.
func stageUnits(t *testing.T) (service, socket string) {
	t.Helper()
	dir := t.TempDir()
	svc, err := os.ReadFile("systemd/tokenauthd.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svc), "\nExecStart=/usr/bin/tokenauthd serve ") {
		t.Fatal("tokenauthd.service: ExecStart does not run /usr/bin/tokenauthd serve")
	}
	svc = []byte(strings.ReplaceAll(string(svc), "/usr/bin/tokenauthd", binary(t)))
	sock, err := os.ReadFile("systemd/tokenauthd.socket")
	if err != nil {
		t.Fatal(err)
	}
	service, socket = filepath.Join(dir, "tokenauthd.service"), filepath.Join(dir, "tokenauthd.socket")
	if err := os.WriteFile(service, svc, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(socket, sock, 0o644); err != nil {
		t.Fatal(err)
	}
	return service, socket
}

// TestSystemdUnitsVerify: systemd-analyze verify finds nothing to say about
// either unit, and the socket is where connect looks by default.
func TestSystemdUnitsVerify(t *testing.T) {
	requirePeer(t, systemdAnalyze)
	service, socket := stageUnits(t)
	out, err := exec.Command(systemdAnalyze, "verify", "--man=no", service, socket).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	sock, _ := os.ReadFile(socket)
	if !strings.Contains(string(sock), "\nListenStream="+defaultSocket+"\n") {
		t.Errorf("tokenauthd.socket does not listen on %s, where connect and the Prosody module look by default", defaultSocket)
	}
}

// TestSystemdServiceSecurity: the service's exposure, as systemd-analyze
// security rates it, is at most 2.0.
func TestSystemdServiceSecurity(t *testing.T) {
	requirePeer(t, systemdAnalyze)
	service, _ := stageUnits(t)
	out, err := exec.Command(systemdAnalyze, "security", "--offline=true", "--no-pager", service).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for tokenauthd\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	level, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	if level > 2.0 {
		t.Errorf("exposure level %.1f, want at most 2.0:\n%s", level, out)
	}
	t.Logf("exposure level %.1f", level)
}

// TestSystemdSysusers: tokenauthd.sysusers creates the user and group the
// units name (User=, Group=, SocketGroup=), in a scratch root.
func TestSystemdSysusers(t *testing.T) {
	const sysusers = "/usr/bin/systemd-sysusers"
	requirePeer(t, sysusers)
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		if err := os.WriteFile(filepath.Join(root, "etc", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf, err := filepath.Abs("systemd/tokenauthd.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sysusers, "--root="+root, conf).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc", "group"))
	if !strings.HasPrefix(string(passwd), "tokenauthd:") || !strings.HasPrefix(string(group), "tokenauthd:") {
		t.Fatalf("no user and group tokenauthd:\n%s\n%s", passwd, group)
	}
	svc, _ := os.ReadFile("systemd/tokenauthd.service")
	sock, _ := os.ReadFile("systemd/tokenauthd.socket")
	for _, want := range []string{"\nUser=tokenauthd\n", "\nGroup=tokenauthd\n"} {
		if !strings.Contains(string(svc), want) {
			t.Errorf("tokenauthd.service lacks %q", strings.TrimSpace(want))
		}
	}
	if !strings.Contains(string(sock), "\nSocketGroup=tokenauthd\n") {
		t.Error("tokenauthd.socket lacks SocketGroup=tokenauthd")
	}
}
