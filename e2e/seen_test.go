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

	"github.com/redis/go-redis/v9"

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

// TestServeSeenRedisTwoNodes: two daemons on one Redis agree on who was
// seen: a login through node A makes the user known to node B's isuser;
// the marks are Redis keys of their own under the prefix, holding no user
// name, and a FLUSHALL forgets them (warned, counted).
func TestServeSeenRedisTwoNodes(t *testing.T) {
	rs := fixture.StartRedis(t, 0)
	dir := t.TempDir()
	metrics := fixture.FreePort(t)
	extra := "isuser = \"seen\"\n" + fmt.Sprintf("[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:%d/0\"\n", rs.Port)
	fixture.MarkRedis(t, rs.Port, "tokenauthd:")
	a := startServeWith(t, extra+fmt.Sprintf("[metrics]\nlisten = \"127.0.0.1:%d\"\n", metrics), filepath.Join(dir, "a.sock"))
	fixture.WaitPort(t, metrics, 10*time.Second)
	b := startServeWith(t, extra, filepath.Join(dir, "b.sock"))
	if askDaemon(t, b.sock, "isuser", "alice", "") {
		t.Fatal("node B: alice exists before she ever logged in")
	}
	if !fixture.Auth(t, a.sock, "alice", fixture.Token(t, "alice")) {
		t.Fatal("node A refused alice's fresh token")
	}
	for _, c := range []struct {
		sock, user string
		want       bool
	}{{b.sock, "alice", true}, {a.sock, "alice", true}, {b.sock, "carol", false}, {a.sock, "Alice", false}} {
		if got := askDaemon(t, c.sock, "isuser", c.user, ""); got != c.want {
			t.Errorf("isuser %s on %s = %v, want %v", c.user, filepath.Base(c.sock), got, c.want)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.Port)})
	defer c.Close()
	keys, err := c.Keys(t.Context(), "tokenauthd:seen:*").Result()
	if err != nil || len(keys) != 1 || strings.Contains(keys[0], "alice") {
		t.Errorf("seen keys in Redis = %q, %v; want one, without the user's name", keys, err)
	}
	if err := c.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	fixture.WaitFor(t, "node A to see the loss", func() bool { return strings.Contains(a.log(), "may have lost") })
	for _, sock := range []string{a.sock, b.sock} {
		if askDaemon(t, sock, "isuser", "alice", "") {
			t.Errorf("%s: alice still exists after Redis lost its data", filepath.Base(sock))
		}
	}
	m := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics))
	if m["tokenauthd_seen_losses_total"] < 1 || m["tokenauthd_seen_writes_total"] != 1 {
		t.Errorf("seen metrics: losses %v, writes %v; want at least 1, and 1", m["tokenauthd_seen_losses_total"], m["tokenauthd_seen_writes_total"])
	}
	if !strings.Contains(a.log(), "the users seen logging in are forgotten") {
		t.Errorf("node A did not warn that seen users were forgotten:\n%s", a.log())
	}
}

// TestServeSeenDuringRefusals: while the replay store refuses every token
// (its journal was lost: store_forgot), isuser still answers from the
// seen users, kept apart from the journal.
func TestServeSeenDuringRefusals(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(state, "replay.journal")
	cfg := fixture.WriteConfig(t, t.TempDir(), fmt.Sprintf("isuser = \"seen\"\n[replay]\njournal = %q\n", journal))
	if out, errOut, code := runBinary(t, nil, "init-journal", "-config", cfg); code != 0 {
		t.Fatalf("init-journal: exit %d:\n%s%s", code, out, errOut)
	}
	sock := filepath.Join(t.TempDir(), "d.sock")
	d := startServe(t, cfg, sock)
	if !fixture.Auth(t, sock, "alice", fixture.Token(t, "alice")) {
		t.Fatal("alice's fresh token refused")
	}
	if code := d.signal(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	if err := os.Remove(journal); err != nil { // lost: every token of the window is refused
		t.Fatal(err)
	}
	d = startServe(t, cfg, sock)
	if fixture.Auth(t, sock, "bob", fixture.Token(t, "bob")) {
		t.Fatalf("a token accepted right after the journal's loss:\n%s", d.log())
	}
	if !strings.Contains(d.log(), "reason=store_forgot") {
		t.Fatalf("no store_forgot refusal:\n%s", d.log())
	}
	if !askDaemon(t, sock, "isuser", "alice", "") {
		t.Errorf("isuser alice = no during the refusal window:\n%s", d.log())
	}
	if askDaemon(t, sock, "isuser", "bob", "") {
		t.Error("isuser bob = yes: his refused login counted")
	}
}
