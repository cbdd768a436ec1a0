package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/fixture/peers"
)

// xmppMessage logs jid in with a fresh token and runs testdata/message.py
// ("send", TO, BODY or "receive"); it returns the lines it printed: the
// bounces ("error: CONDITION") or the messages received ("body: BODY").
func xmppMessage(t *testing.T, seed, secret, jid string, port int, args ...string) []string {
	t.Helper()
	tok := pyotpToken(t, seed, secret, jid, 0, "")
	out, err := exec.Command(fixture.DebianPython, append([]string{"testdata/message.py", jid, tok, fmt.Sprint(port)}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("message.py %s %v: %v\n%s", jid, args, err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "error: ") || strings.HasPrefix(l, "body: ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestEjabberdSeenOffline: a real ejabberd with mod_offline, its relay and
// the daemon with a journal, the host's isuser = "seen". A message to alice
// before she ever logged in bounces; once she has logged in and left, and
// after the daemon's restart, bob's message to her is kept for her, not
// bounced, while his message to carol (never seen) bounces with
// service-unavailable; alice's next login receives it.
func TestEjabberdSeenOffline(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:pyotp", "python:slixmpp")
	dir := ejabberdDir(t)
	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(state, "replay.journal")
	sock := filepath.Join(dir, "run", "d.sock")
	cfg := fixture.WriteFile(t, filepath.Join(t.TempDir(), "config.toml"), e2eConfig()+"isuser = \"seen\"\n"+
		fmt.Sprintf("[replay]\njournal = %q\n[daemon]\nsocket_group = \"ejabberd\"\n", journal))
	// Made before the first start, as the package does: no loss to wait out.
	if out, errOut, code := runBinary(t, nil, "init-journal", "-config", cfg); code != 0 {
		t.Fatalf("init-journal: exit %d:\n%s%s", code, out, errOut)
	}
	daemon := startServe(t, cfg, sock)
	relay, relayLog := stageBinary(t, dir), filepath.Join(dir, "relay.log")
	chownEjabberd(t, dir)
	program := fmt.Sprintf("%s connect -protocol ejabberd -socket %s 2>>%s", relay, sock, relayLog)
	e := writeEjabberd(t, program, 1)
	yml, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	withOffline := strings.Replace(string(yml), "  mod_roster: {}\n", "  mod_roster: {}\n  mod_offline: {}\n", 1)
	if err := os.WriteFile(e.config, []byte(withOffline), 0o644); err != nil {
		t.Fatal(err)
	}
	port := runEjabberd(t, e, program)
	seenOffline(t, e2eSeed, e2eSecret, port, func() *serveProc { return daemon }, func() {
		if code := daemon.signal(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("serve exited %d on SIGTERM", code)
		}
		daemon = startServe(t, cfg, sock)
	}, func() string { return "relay log:\n" + readFile(t, relayLog) + "\ndaemon log:\n" + daemon.log() })
}

// seenOffline runs the steps of isuser = "seen" with offline messages on a
// server at port whose host "localhost" has tokens of seed and secret:
// daemon is the daemon of the moment, restart restarts it, logs says
// what happened.
func seenOffline(t *testing.T, seed, secret string, port int, daemon func() *serveProc, restart func(), logs func() string) {
	t.Helper()
	send := func(from, to, body string) []string {
		return xmppMessage(t, seed, secret, from, port, "send", to, body)
	}
	receive := func(jid string) []string { return xmppMessage(t, seed, secret, jid, port, "receive") }

	const bounce = "error: service-unavailable"
	if got := send("bob@localhost", "alice@localhost", "before"); !slices.Contains(got, bounce) {
		t.Fatalf("a message to alice before she ever logged in: %q, want a bounce\n%s", got, logs())
	}
	if got := receive("alice@localhost"); len(got) != 0 {
		t.Fatalf("alice's first login received %q, want nothing\n%s", got, logs())
	}
	// The daemon restarts: alice is still known, from the file beside
	// the journal.
	restart()
	if log := daemon().log(); !strings.Contains(log, "seen users loaded") || !strings.Contains(log, "loaded=2") {
		t.Errorf("the restarted daemon did not load its seen users:\n%s", log)
	}
	if got := send("bob@localhost", "alice@localhost", "while you were away"); len(got) != 0 {
		t.Fatalf("bob's message to alice, seen before the restart: %q, want it kept\n%s", got, logs())
	}
	if got := send("bob@localhost", "carol@localhost", "hello"); !slices.Contains(got, bounce) {
		t.Fatalf("bob's message to carol, never seen: %q, want %q\n%s", got, bounce, logs())
	}
	if got := receive("alice@localhost"); !slices.Contains(got, "body: while you were away") {
		t.Fatalf("alice's second login received %q, want bob's message\n%s", got, logs())
	}
}

// TestProsodySeenOffline: the same steps through a real Prosody with
// mod_offline and prosody/mod_auth_tokenauthd.lua, whose user_exists asks
// the daemon's isuser.
func TestProsodySeenOffline(t *testing.T) {
	set := peers.Get(t)
	fixture.RequirePeer(t, set.ProsodyBin, fixture.DebianPython, "python:slixmpp", "python:pyotp")
	dir := t.TempDir()
	sock := filepath.Join(dir, "tokenauthd.sock")
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fixture.WriteFile(t, filepath.Join(dir, "config.toml"), prosodyConfig()+"isuser = \"seen\"\n"+
		fmt.Sprintf("[replay]\njournal = %q\n", filepath.Join(state, "replay.journal")))
	if out, errOut, code := runBinary(t, nil, "init-journal", "-config", cfg); code != 0 {
		t.Fatalf("init-journal: exit %d:\n%s%s", code, out, errOut)
	}
	daemon := startServe(t, cfg, sock)
	cfgPath, p := writeProsody(t, dir, sock)
	lua, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	withOffline := strings.NewReplacer(`modules_disabled = { "s2s", "offline" }`, `modules_disabled = { "s2s" }`,
		`"ping" }`, `"ping", "offline" }`).Replace(string(lua))
	if withOffline == string(lua) || !strings.Contains(withOffline, `"offline" }`) {
		t.Fatalf("cannot enable mod_offline in:\n%s", lua)
	}
	if err := os.WriteFile(cfgPath, []byte(withOffline), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(set.ProsodyBin, "--config", cfgPath)
	_, p.exited = startCmd(t, p.cmd, filepath.Join(dir, "prosody.console"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prosody log (tail):\n%s", lastLines(readFile(t, p.log), 60))
		}
	})
	fixture.WaitPort(t, p.port, 15*time.Second)
	if err := set.CheckProsodyLog(readFile(t, p.log)); err != nil {
		t.Fatal(err)
	}
	seenOffline(t, prosodySeed, prosodySecret, p.port, func() *serveProc { return daemon }, func() {
		if code := daemon.signal(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("serve exited %d on SIGTERM", code)
		}
		daemon = startServe(t, cfg, sock)
	}, func() string { return "daemon log:\n" + daemon.log() })
}
