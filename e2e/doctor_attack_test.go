package e2e

// `tokenauthd doctor` run by root, as an attacker who can write one of the
// XMPP servers' files would have it run: the built binary, the machine's
// Prosody and its Lua.

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// nobody returns the uid and gid of the account nobody.
func nobody(t *testing.T) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// writeOwned writes a file (mode 0644) and gives it to uid:gid.
func writeOwned(t *testing.T, path, body string, uid, gid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// TestAttackDoctorProsodyIncludeRunsAsRoot: a root-owned prosody.cfg.lua
// includes inc/*.cfg.lua, and inc/ and its file belong to nobody. doctor,
// run by root, loads the configuration through Prosody's loader, which
// runs the included file's Lua: it must run it as Prosody's user, never
// as root, and report that nobody can write the file and its directory.
func TestAttackDoctorProsodyIncludeRunsAsRoot(t *testing.T) {
	fixture.RequirePeer(t, "/usr/bin/prosodyctl", "/usr/bin/lua5.4")
	if os.Getuid() != 0 {
		t.Skip("needs root: the attack is on doctor run by root")
	}
	prosody, err := user.Lookup("prosody")
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := nobody(t)
	dir := serverDir(t)
	// Where the included Lua says who ran it: anyone may write there.
	marks := filepath.Join(dir, "marks")
	if err := os.Mkdir(marks, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(marks, 0o1777); err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join(marks, "ran-as")
	inc := filepath.Join(dir, "inc")
	if err := os.Mkdir(inc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(inc, uid, gid); err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(inc, "evil.cfg.lua")
	writeOwned(t, evil, `os.execute("/usr/bin/id -u >> `+mark+`")`+"\n", uid, gid)
	cfg := filepath.Join(dir, "prosody.cfg.lua")
	writeOwned(t, cfg, "Include \"inc/*.cfg.lua\"\nVirtualHost \"localhost\"\n", 0, 0)
	ejabberd := filepath.Join(dir, "ejabberd.yml")
	writeOwned(t, ejabberd, "hosts: [localhost]\nauth_method: [internal]\n", 0, 0)

	out, errOut, code := runBinary(t, nil, "doctor", "-config", filepath.Join(dir, "none.toml"), "-ejabberd", ejabberd, "-prosody", cfg)
	report := string(out)
	t.Logf("exit %d, report:\n%s\nstderr: %s", code, report, errOut)
	ran, err := os.ReadFile(mark)
	if err != nil {
		t.Fatalf("the included Lua did not run at all (%v): doctor must still read the configuration, as Prosody's user", err)
	}
	for _, l := range strings.Fields(string(ran)) {
		if l == "0" {
			t.Errorf("doctor ran a file nobody can write as root (uid %s)", l)
		} else if l != prosody.Uid {
			t.Errorf("doctor ran the configuration as uid %s, not as Prosody's user (%s)", l, prosody.Uid)
		}
	}
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, p := range []string{inc, evil} {
		found := false
		for _, l := range strings.Split(report, "\n") {
			found = found || strings.HasPrefix(l, "error: "+p+": ") && strings.Contains(l, "nobody (its owner) can change it")
		}
		if !found {
			t.Errorf("no error says that nobody can write %s:\n%s", p, report)
		}
	}
}

// hostileHosts are host names that are no domain names, each a shell
// command for whoever pastes a line that quotes it bare; marker names the
// file the command would create.
func hostileHosts(marker func(string) string) []string {
	return []string{
		"x.org; /usr/bin/touch " + marker("semicolon") + " #",
		"x.org$(/usr/bin/touch " + marker("dollar") + ")",
		"x.org`/usr/bin/touch " + marker("backtick") + "`",
		"x.org' && /usr/bin/touch " + marker("quote") + " '",
		"x.org\" && /usr/bin/touch " + marker("dquote") + " \"",
		"x.org\n/usr/bin/touch " + marker("newline"),
		"x.org | /usr/bin/touch " + marker("pipe"),
		"x.org\u00a0&& /usr/bin/touch " + marker("nbsp"),
	}
}

// runFixes runs each fix line of a report in sh, as an admin who pastes
// them would (whole, and cut before the words that follow a command), with every program they name replaced by one that does
// nothing (the programs the hostile names call are named by absolute
// paths, and are real).
func runFixes(t *testing.T, report string) {
	t.Helper()
	bin := t.TempDir()
	for _, prog := range []string{"tokenauthd", "chown", "chmod", "adduser", "systemctl", "prosodyctl", "ejabberdctl", "install"} {
		if err := os.WriteFile(filepath.Join(bin, prog), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	for _, l := range strings.Split(report, "\n") {
		_, fix, ok := strings.Cut(l, "; fix: ")
		if !ok {
			continue
		}
		// The command alone, without the words that follow it.
		variants := []string{fix}
		for _, sep := range []string{" (", ", "} {
			if before, _, ok := strings.Cut(fix, sep); ok {
				variants = append(variants, before)
			}
		}
		for _, v := range variants {
			cmd := exec.Command("/bin/sh", "-c", v)
			cmd.Dir, cmd.Env = work, []string{"PATH=" + bin}
			_ = cmd.Run()
		}
	}
}

// TestAttackDoctorHostileHostNames: ejabberd.yml (on Debian, the ejabberd
// user's) and prosody.cfg.lua name hosts that are shell commands. doctor
// must report each as no domain name, quoted escaped, and print no
// command that runs them: every fix line it prints, run in a shell, must
// create none of the markers.
func TestAttackDoctorHostileHostNames(t *testing.T) {
	fixture.RequirePeer(t, "/usr/bin/prosodyctl", "/usr/bin/lua5.4")
	dir := serverDir(t)
	// In lower case: both servers fold the names they read.
	markers := filepath.Join(dir, "marks")
	if err := os.Mkdir(markers, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := func(name string) string { return filepath.Join(markers, name) }
	hosts := hostileHosts(marker)
	// A valid name, not ASCII: its command is printed, quoted.
	const idn = "exämple.org"

	// ejabberd: a stdin/stdout helper whose configuration has none of
	// the hosts, so that doctor would print gen-secrets for each.
	helper := stageHelper(t, e2eConfig(), "-protocol", "ejabberd")
	var yml strings.Builder
	yml.WriteString("hosts:\n")
	for _, h := range append(hosts, idn) {
		yml.WriteString("  - " + strconv.Quote(h) + "\n")
	}
	yml.WriteString("auth_method: [external]\nextauth_program: " + strconv.Quote(helper) + "\nextauth_pool_size: 1\nauth_use_cache: false\n")
	ejabberd := filepath.Join(dir, "ejabberd.yml")
	writeOwned(t, ejabberd, yml.String(), 0, 0)

	// Prosody: the module on every host, and tokenauthd's daemon
	// configuration without their sections.
	cfg := fixture.WriteFile(t, filepath.Join(dir, "config.toml"), e2eConfig())
	var lua strings.Builder
	lua.WriteString("authentication = \"tokenauthd\"\n")
	for _, h := range append(hosts, idn) {
		lua.WriteString("VirtualHost " + luaString(h) + "\n")
	}
	prosody := filepath.Join(dir, "prosody.cfg.lua")
	writeOwned(t, prosody, lua.String(), 0, 0)

	out, errOut, code := runBinary(t, nil, "doctor", "-config", cfg, "-ejabberd", ejabberd, "-prosody", prosody)
	report := string(out)
	t.Logf("exit %d, report:\n%s\nstderr: %s", code, report, errOut)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	runFixes(t, report)
	entries, err := os.ReadDir(markers)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("a fix line doctor printed ran the command a host name hides (%s)", e.Name())
	}
	// Each name is a finding of its own in each file, the name quoted
	// escaped (as each server folds it).
	for _, file := range []string{ejabberd, prosody} {
		for _, name := range []string{"semicolon", "dollar", "backtick", "quote", "dquote", "newline", "pipe", "nbsp"} {
			found := false
			for _, l := range strings.Split(report, "\n") {
				if strings.HasPrefix(l, "error: "+file+":") && strings.Contains(l, "is not a valid domain name") &&
					strings.Contains(l, marker(name)) && !strings.Contains(l, "; fix: ") {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no finding says the host that creates %s is not a valid domain name", file, name)
			}
		}
	}
	for _, l := range strings.Split(report, "\n") {
		if strings.Contains(l, "; fix: ") && strings.Contains(l, "/usr/bin/touch") {
			t.Errorf("a fix line quotes a hostile name: %s", l)
		}
	}
	if want := "tokenauthd gen-secrets '" + idn + "' >> " + cfg; !strings.Contains(report, want) {
		t.Errorf("no fix line %q", want)
	}
}

// luaString quotes s as a Lua string literal: every byte that is not a
// printable ASCII character, a quote or a backslash as \ddd.
func luaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			fmt.Fprintf(&b, `\%03d`, c)
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}
