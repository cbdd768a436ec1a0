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

	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// xmppMessage logs jid in with a fresh token and runs testdata/message.py
// ("send", TO, BODY or "receive"); it returns the lines it printed: the
// bounces ("error: CONDITION") or the messages received ("body: BODY").
func xmppMessage(t *testing.T, jid string, port int, args ...string) []string {
	t.Helper()
	tok := pyotpToken(t, e2eSeed, e2eSecret, jid, 0, "")
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
	logs := func() string { return "relay log:\n" + readFile(t, relayLog) + "\ndaemon log:\n" + daemon.log() }

	const bounce = "error: service-unavailable"
	if got := xmppMessage(t, "bob@localhost", port, "send", "alice@localhost", "before"); !slices.Contains(got, bounce) {
		t.Fatalf("a message to alice before she ever logged in: %q, want a bounce\n%s", got, logs())
	}
	if got := xmppMessage(t, "alice@localhost", port, "receive"); len(got) != 0 {
		t.Fatalf("alice's first login received %q, want nothing\n%s", got, logs())
	}
	// The daemon restarts: alice is still known, from the file beside
	// the journal.
	if code := daemon.signal(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d on SIGTERM", code)
	}
	daemon = startServe(t, cfg, sock)
	if !strings.Contains(daemon.log(), "seen users loaded") || !strings.Contains(daemon.log(), "loaded=2") {
		t.Errorf("the restarted daemon did not load its seen users:\n%s", daemon.log())
	}
	if got := xmppMessage(t, "bob@localhost", port, "send", "alice@localhost", "while you were away"); len(got) != 0 {
		t.Fatalf("bob's message to alice, seen before the restart: %q, want it kept\n%s", got, logs())
	}
	if got := xmppMessage(t, "bob@localhost", port, "send", "carol@localhost", "hello"); !slices.Contains(got, bounce) {
		t.Fatalf("bob's message to carol, never seen: %q, want %q\n%s", got, bounce, logs())
	}
	if got := xmppMessage(t, "alice@localhost", port, "receive"); !slices.Contains(got, "body: while you were away") {
		t.Fatalf("alice's second login received %q, want bob's message\n%s", got, logs())
	}
}
