package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/replay"
)

// docSnippet returns the one fenced code block in lang of the guide
// docs/NAME.
func docSnippet(t *testing.T, name, lang string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../docs", name))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\n```"+lang+"\n(.*?)\n```\n").FindAllStringSubmatch(string(b), -1)
	if len(m) != 1 {
		t.Fatalf("docs/%s has %d ```%s blocks, want 1", name, len(m), lang)
	}
	return m[0][1]
}

// checkExampleToken verifies tok for alice@example.org with the example
// configuration, which the minting guide's snippets use.
func checkExampleToken(t *testing.T, tok string) {
	t.Helper()
	// Parsed, not loaded: a checkout's modes are its user's umask's.
	example, err := os.ReadFile("../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := setup.Parse("../config.toml.example", example, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := cfg.NewOffline()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9]{40} [A-Za-z0-9+/]{43}=$`).MatchString(tok) {
		t.Errorf("token %q is not 8 + 32 digits, a space and base64", tok)
	}
	if r := v.Check(context.Background(), "alice", "example.org", tok); !r.OK() {
		t.Errorf("the minting guide's token is refused: %s (%v)", r.Reason, r.Err)
	}
}

// The minting guide's Python snippet works: its token is accepted.
func TestMintingPython(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython, "python:pyotp")
	out, err := exec.Command(fixture.DebianPython, "-c", docSnippet(t, "minting.md", "python")).Output()
	if err != nil {
		t.Fatalf("the minting guide's Python: %v", err)
	}
	checkExampleToken(t, strings.TrimSpace(string(out)))
}

// The minting guide's Go snippet works: its token is accepted.
func TestMintingGo(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(docSnippet(t, "minting.md", "go")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "main.go")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the minting guide's Go: %v", err)
	}
	checkExampleToken(t, strings.TrimSpace(string(out)))
}

// nodeJS is Debian's Node.js, which runs the minting guide's JavaScript.
const nodeJS = "/usr/bin/node"

// The minting guide's JavaScript works, on Node.js with no package: its
// token is accepted.
func TestMintingJavaScript(t *testing.T) {
	fixture.RequirePeer(t, nodeJS)
	dir := t.TempDir()
	file := filepath.Join(dir, "mint.mjs")
	if err := os.WriteFile(file, []byte(docSnippet(t, "minting.md", "javascript")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nodeJS, file)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the minting guide's JavaScript: %v", err)
	}
	checkExampleToken(t, strings.TrimSpace(string(out)))
}

const systemdAnalyze = "/usr/bin/systemd-analyze"

// stageUnits copies systemd/'s units into a temporary directory, with
// ExecStart pointing at the built binary (verify wants it to exist), and
// returns their paths.
func stageUnits(t *testing.T) (service, socket string) {
	t.Helper()
	dir := t.TempDir()
	svc, err := os.ReadFile("../systemd/tokenauthd.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svc), "\nExecStart=/usr/bin/tokenauthd serve ") {
		t.Fatal("tokenauthd.service: ExecStart does not run /usr/bin/tokenauthd serve")
	}
	svc = []byte(strings.ReplaceAll(string(svc), "/usr/bin/tokenauthd", fixture.Binary(t)))
	sock, err := os.ReadFile("../systemd/tokenauthd.socket")
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
	fixture.RequirePeer(t, systemdAnalyze)
	service, socket := stageUnits(t)
	out, err := exec.Command(systemdAnalyze, "verify", "--man=no", service, socket).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// SystemCallFilter=~@resources stops Go from raising its soft limit
	// of open files (setrlimit): the unit must give one that fits every
	// relay and Prosody connection.
	svc, _ := os.ReadFile(service)
	if n, err := strconv.Atoi(unitSetting(svc, "LimitNOFILE")); err != nil || n < 65536 {
		t.Errorf("tokenauthd.service: LimitNOFILE=%s, want at least 65536", unitSetting(svc, "LimitNOFILE"))
	}
	sock, _ := os.ReadFile(socket)
	if !strings.Contains(string(sock), "\nListenStream="+config.DefaultSocket+"\n") {
		t.Errorf("tokenauthd.socket does not listen on %s, where connect and the Prosody module look by default", config.DefaultSocket)
	}
}

// TestSystemdServiceSecurity: the service's exposure, as systemd-analyze
// security rates it, is at most 2.0.
func TestSystemdServiceSecurity(t *testing.T) {
	fixture.RequirePeer(t, systemdAnalyze)
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

// unitSetting returns the value of key= in a unit file, or "".
func unitSetting(unit []byte, key string) string {
	m := regexp.MustCompile(`(?m)^` + key + `=(.*)$`).FindSubmatch(unit)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// TestSystemdSysusers: tokenauthd.sysusers creates the user and group the
// units name (User=, Group=, SocketUser=, SocketGroup=), in a scratch root.
// The socket has a group of its own, which the XMPP server joins; it is
// owned by the daemon's user, whose watchdog probe connects to it.
func TestSystemdSysusers(t *testing.T) {
	const sysusers = "/usr/bin/systemd-sysusers"
	fixture.RequirePeer(t, sysusers)
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		if err := os.WriteFile(filepath.Join(root, "etc", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf, err := filepath.Abs("../systemd/tokenauthd.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sysusers, "--root="+root, conf).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc", "group"))
	users := regexp.MustCompile(`(?m)^([^:]+):`).FindAllStringSubmatch(string(passwd), -1)
	groups := regexp.MustCompile(`(?m)^([^:]+):[^:]*:[0-9]+:(.*)$`).FindAllStringSubmatch(string(group), -1)
	has := func(list [][]string, name string) bool {
		for _, m := range list {
			if m[1] == name {
				return true
			}
		}
		return false
	}
	svc, _ := os.ReadFile("../systemd/tokenauthd.service")
	sock, _ := os.ReadFile("../systemd/tokenauthd.socket")
	for _, want := range []struct {
		unit, key, value string
		in               []byte
	}{
		{"tokenauthd.service", "User", "tokenauthd", svc},
		{"tokenauthd.service", "Group", "tokenauthd", svc},
		{"tokenauthd.socket", "SocketUser", "tokenauthd", sock},
		{"tokenauthd.socket", "SocketGroup", socketGroup, sock},
	} {
		if got := unitSetting(want.in, want.key); got != want.value {
			t.Errorf("%s: %s=%s, want %s", want.unit, want.key, got, want.value)
		}
	}
	if !has(users, "tokenauthd") {
		t.Errorf("no user tokenauthd:\n%s", passwd)
	}
	for _, g := range []string{"tokenauthd", socketGroup} {
		if !has(groups, g) {
			t.Errorf("no group %s:\n%s", g, group)
		}
	}
}

// socketGroup is the group of the daemon's socket under systemd: its
// members (the XMPP servers' users, and only they) may connect.
const socketGroup = "tokenauthd-clients"

// TestSocketGroupDocumented: every group the README, the guides and the
// units' comments tell an admin to put the XMPP server in, or name as the
// socket's, is the socket unit's SocketGroup; the README and each guide that
// sets up a server name it.
func TestSocketGroupDocumented(t *testing.T) {
	sock, err := os.ReadFile("../systemd/tokenauthd.socket")
	if err != nil {
		t.Fatal(err)
	}
	group := unitSetting(sock, "SocketGroup")
	if group == "" {
		t.Fatal("tokenauthd.socket has no SocketGroup=")
	}
	mentions := regexp.MustCompile("adduser [a-z]+ ([a-z-]+)|usermod -aG ([a-z-]+)|group `([a-z-]+)`|`?([a-z-]+)`? group")
	// Where an admin is told to put a server's user in the group: each
	// must name it at least once.
	setUp := []string{"../README.md", "../docs/install.md", "../docs/ejabberd.md", "../docs/prosody.md", "../docs/operating.md"}
	for _, f := range append(setUp, "../docs/troubleshooting.md", "../systemd/tokenauthd.service", "../systemd/tokenauthd.socket", "../systemd/tokenauthd.sysusers") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range mentions.FindAllStringSubmatch(string(b), -1) {
			name := m[1] + m[2] + m[3] + m[4]
			if m[4] != "" && !strings.HasPrefix(name, "tokenauthd") {
				continue // "the ejabberd group", "its own group"...
			}
			n++
			if name != group {
				t.Errorf("%s: %q names the group %s; the socket's is %s", f, m[0], name, group)
			}
		}
		if slices.Contains(setUp, f) && n == 0 {
			t.Errorf("%s never names the socket's group", f)
		}
	}
}

const module = "github.com/tokenauthd/tokenauthd"

// TestRoomRules checks the rules between rooms that ARCHITECTURE.md writes
// down and that the packages' (non-test) imports can show: what a room
// imports is what it knows; the libraries must not even link go-redis.
func TestRoomRules(t *testing.T) {
	deps := goList(t, "Imports")
	linked := goList(t, "Deps")
	// Only the daemon (and those that run it: main, bench's tests, the
	// fixtures) opens a Redis store: the libraries, reading the file,
	// making it ready, minting and explaining link no Redis client.
	for _, room := range []string{"/protocol", "/verifier", "/replay", "/internal/config", "/internal/setup", "/internal/mint", "/internal/explain"} {
		if slices.Contains(linked[room], "github.com/redis/go-redis/v9") {
			t.Errorf("%s links go-redis", room)
		}
	}
	// internal/config only reads the file: it links none of the libraries.
	for _, lib := range []string{"/protocol", "/verifier", "/replay", "/replay/redis"} {
		if slices.Contains(linked["/internal/config"], module+lib) {
			t.Errorf("/internal/config links %s", lib)
		}
	}
	never := []struct {
		room string
		deps []string
	}{
		{"/protocol", []string{"/verifier", "/replay"}},
		{"/verifier", []string{"/protocol"}},
		{"/replay", []string{"/verifier", "/protocol"}},
		{"/internal/daemon", []string{"/internal/bench", "/internal/explain"}},
		{"/internal/config", []string{"/internal/daemon", "/internal/relay", "/internal/cli", "/internal/setup", "/internal/jwks", "/internal/httpapi"}},
		{"/internal/setup", []string{"/internal/daemon", "/internal/relay", "/internal/cli", "/replay/redis"}},
		{"/internal/httpapi", []string{"/protocol", "/replay", "/internal/daemon", "/internal/relay", "/internal/cli"}},
		{"/internal/cli", []string{"/internal/daemon", "/internal/relay", "/verifier"}},
		{"/internal/logs", []string{"/verifier", "/protocol", "/internal/daemon"}},
		{"/internal/term", []string{"/protocol", "/verifier", "/internal/daemon"}},
		{"/internal/relay", []string{"/verifier", "/replay", "/internal/daemon"}},
		{"/internal/doctor", []string{"/internal/daemon", "/internal/relay", "/internal/bench", "/internal/explain"}},
		{"/internal/access", []string{"/internal/config", "/verifier", "/protocol"}},
		{"/internal/jwks", []string{"/internal/config", "/internal/daemon", "/protocol", "/replay"}},
		// What records nothing builds no store: an offline verifier.
		{"/internal/mint", []string{"/replay"}},
		{"/internal/explain", []string{"/replay"}},
		{"/internal/bench", []string{"/replay"}},
	}
	for _, r := range never {
		d, ok := deps[r.room]
		if !ok {
			t.Errorf("no package %s", r.room)
			continue
		}
		for _, n := range r.deps {
			if n = module + n; slices.Contains(d, n) {
				t.Errorf("%s depends on %s", r.room, n)
			}
		}
	}
	testOnlyRooms := []string{"/internal/fixture", "/internal/fixture/peers", "/internal/daemon/daemontest", "/internal/logs/logstest", "/internal/testclock", "/replay/storetest"}
	for room, d := range linked {
		if slices.Contains(testOnlyRooms, room) {
			continue // test-only rooms may use each other
		}
		for _, testOnly := range testOnlyRooms {
			if slices.Contains(d, module+testOnly) {
				t.Errorf("%s, which is not a test, depends on %s", room, testOnly)
			}
		}
	}
}

// The root holds main.go and at most two more files of code, and at most
// three test files.
func TestRootHoldsTheCommandTable(t *testing.T) {
	files, err := filepath.Glob("../*.go")
	if err != nil {
		t.Fatal(err)
	}
	var code, tests []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			tests = append(tests, f)
		} else {
			code = append(code, f)
		}
	}
	if _, err := os.Stat("../main.go"); err != nil || len(code) > 3 || len(tests) > 3 {
		t.Errorf("root: code %v, tests %v", code, tests)
	}
}

// goList returns, for every package of the module, a list field of go
// list's (Imports, Deps), by path below the module.
func goList(t *testing.T, field string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join ."+field+` " "}}`, module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	m := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		m[strings.TrimPrefix(f[0], module)] = f[1:]
	}
	return m
}

// TestJWTGuide: the JWT guide's snippets work together: its key-making
// commands make a key and the host's key set, and the JWTs its Python
// (PyJWT) and Go (golang-jwt) snippets sign with that key are each
// accepted once for alice@example.org.
func TestJWTGuide(t *testing.T) {
	fixture.RequirePeer(t, "/usr/bin/openssl", fixture.DebianPython, "python:jwt", "python:cryptography")
	dir := t.TempDir()
	run := func(what string, cmd *exec.Cmd) string {
		t.Helper()
		cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin:"+os.Getenv("PATH")) // Debian's python3
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("the JWT guide's %s: %v\n%s", what, err, stderr)
		}
		return strings.TrimSpace(string(out))
	}
	keys := exec.Command("/bin/bash", "-euc", docSnippet(t, "jwt.md", "sh"))
	keys.Dir = dir
	run("key-making commands", keys)
	py := exec.Command(fixture.DebianPython, "-c", docSnippet(t, "jwt.md", "py"))
	py.Dir = dir
	pyJWT := run("Python", py)
	// go run inside the module, which requires golang-jwt: a directory
	// whose name starts with a dot is no package of ./...
	goDir, err := os.MkdirTemp(".", ".readme-jwt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(goDir) })
	key, err := os.ReadFile(filepath.Join(dir, "app-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"main.go": []byte(docSnippet(t, "jwt.md", "golang")), "app-key.pem": key} {
		if err := os.WriteFile(filepath.Join(goDir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	golang := exec.Command("go", "run", "main.go")
	golang.Dir = goDir
	goJWT := run("Go", golang)

	set := filepath.Join(dir, "example.org.jwks.json")
	if err := os.Chmod(set, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := setup.Load(fixture.WriteFile(t, filepath.Join(dir, "config.toml"), "[hosts.\"example.org\".jwt]\nkeys_file = \""+set+"\"\n"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := cfg.NewVerifier(replay.NewMemory(replay.MemoryOptions{Capacity: 100, TTL: time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	for what, tok := range map[string]string{"Python": pyJWT, "Go": goJWT} {
		if r := v.Verify(context.Background(), "alice", "example.org", tok); !r.OK() || r.KeyID != "app-2026-12" {
			t.Errorf("the JWT guide's %s JWT: %s (%v), key %q", what, r.Reason, r.Err, r.KeyID)
		}
		if r := v.Verify(context.Background(), "alice", "example.org", tok); r.OK() {
			t.Errorf("the JWT guide's %s JWT accepted twice", what)
		}
	}
}

// webchatGuideApp starts a daemon whose HTTP API serves the application
// "webapp" on loopback, and returns the environment the web chat guide's
// snippets read (TOKENAUTHD_URL, TOKENAUTHD_KEY_FILE) and the daemon.
func webchatGuideApp(t *testing.T) ([]string, *serveProc) {
	t.Helper()
	dir := t.TempDir()
	keyFile := writeKey(t, dir, "webapp.key", apiKey)
	port := fixture.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := startServeWith(t, httpSection(addr, keyFile, 60, "trusted_proxies = [\"127.0.0.1\"]\n"), filepath.Join(dir, "d.sock"))
	fixture.WaitPort(t, port, 10*time.Second)
	return append(os.Environ(), "TOKENAUTHD_URL=http://"+addr, "TOKENAUTHD_KEY_FILE="+keyFile), p
}

// checkGuideToken checks the snippets' output: the folded JID, then a
// token the daemon accepts once.
func checkGuideToken(t *testing.T, p *serveProc, out []byte) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[0] != "alice@example.org" {
		t.Fatalf("the snippet printed %q, want the JID alice@example.org and a token", out)
	}
	if !askDaemon(t, p.sock, "auth", "alice", lines[1]) {
		t.Error("the snippet's token is refused")
	}
	if askDaemon(t, p.sock, "auth", "alice", lines[1]) {
		t.Error("the snippet's token is accepted twice")
	}
}

// The web chat guide's Python asks POST /v1/tokens and gets a token the
// daemon accepts.
func TestWebchatGuidePython(t *testing.T) {
	fixture.RequirePeer(t, fixture.DebianPython)
	env, p := webchatGuideApp(t)
	cmd := exec.Command(fixture.DebianPython, "-c", docSnippet(t, "webchat.md", "python"))
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the web chat guide's Python: %v", err)
	}
	checkGuideToken(t, p, out)
}

// The web chat guide's JavaScript, on Node.js with no package, does the
// same.
func TestWebchatGuideJavaScript(t *testing.T) {
	fixture.RequirePeer(t, nodeJS)
	env, p := webchatGuideApp(t)
	file := filepath.Join(t.TempDir(), "token.mjs")
	if err := os.WriteFile(file, []byte(docSnippet(t, "webchat.md", "javascript")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nodeJS, file)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the web chat guide's JavaScript: %v", err)
	}
	checkGuideToken(t, p, out)
}

// The web chat guide's [http] section is a valid configuration that
// serves the credentials endpoint on a Unix socket of the web server's
// group.
func TestWebchatGuideConfig(t *testing.T) {
	text := docSnippet(t, "webchat.md", "toml") + "\n" + fixture.HostBlock("example.org", fixture.Secret, fixture.Seed, nil, nil)
	c, err := config.Parse("webchat.md", []byte(text), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := c.HTTP
	if h == nil || h.Socket != "/run/tokenauthd/http.sock" || h.SocketGroup != "www-data" || h.Credentials == nil ||
		h.Credentials.Host != "example.org" || h.Credentials.UserHeader != "X-Forwarded-User" {
		t.Errorf("the guide's [http] loads as %+v", h)
	}
}
