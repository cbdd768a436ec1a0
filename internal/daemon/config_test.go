package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/setup"
)

// A TOML syntax error names the file and the line, never a part of the
// value: the parser's own messages quote it, and the value may be a secret.
// Checked where the error goes: loadConfig (serve, the helper), the relay's
// settings, and check-config's output.
func TestConfigSyntaxErrorHidesValue(t *testing.T) {
	dir := t.TempDir()
	values := []struct{ text, secret string }{
		{"truesecret", "truese"},
		{"12_34__5678", "12_3"},
		{"[Sup3rS3cret]", "Sup"},
		{`"Sup3r` + "\n", "Sup"},
		{"0xZZSecretZZ", "0xZ"},
		{"Sup3r S3cret", "Sup"},
		{"1979-05-27TSup3r", "1979"},
	}
	for i, v := range values {
		text := "[hosts.\"example.org\"]\notp_seed = \"JBSWY3DPEHPK3PXP\"\ntoken_secret = " + v.text + "\n"
		p := filepath.Join(dir, fmt.Sprintf("c%d.toml", i))
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := setup.Load(p, config.Options{})
		if err == nil {
			t.Errorf("setup.Load(token_secret = %q, config.Options{}): no error", v.text)
			continue
		}
		if want := p + ":3: syntax error"; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("setup.Load(token_secret = %q, config.Options{}) = %q, want it to start with %q", v.text, err, want)
		}
		_, rerr := config.LoadRelay(p, true)
		if rerr == nil || !strings.HasPrefix(rerr.Error(), p+":3: syntax error") {
			t.Errorf("config.LoadRelay(token_secret = %q) = %v, want a syntax error at line 3", v.text, rerr)
		}
		code, stdout, stderr := runCmd(t, "", "check-config", "-config", p)
		if code == 0 {
			t.Errorf("check-config(token_secret = %q) passed", v.text)
		}
		for _, out := range []string{err.Error(), fmt.Sprint(rerr), stdout, stderr} {
			if strings.Contains(out, v.secret) {
				t.Errorf("token_secret = %q: output %q holds part of the value", v.text, out)
			}
		}
	}
}

// TestConfigRotationLogMetrics: the options of rotation, logs and metrics
// are validated, and errors name the key without quoting a secret.
func TestConfigRotationLogMetrics(t *testing.T) {
	host := func(extra string) string {
		return "[hosts.\"a.example\"]\ntoken_secret = \"cur-secret-xyz\"\notp_seed = \"" + fixture.SeedA + "\"\n" + extra
	}
	tests := []struct {
		name, body string
		err        string // "" = valid
	}{
		{"old lists", host("old_token_secrets = [\"old-1\", \"old-2\"]\nold_otp_seeds = [\"" + fixture.SeedB + "\"]\n"), ""},
		{"empty old lists", host("old_token_secrets = []\nold_otp_seeds = []\n"), ""},
		{"empty old secret", host("old_token_secrets = [\"\"]\n"), `old_token_secrets[0] is empty`},
		{"old secret repeats current", host("old_token_secrets = [\"cur-secret-xyz\"]\n"), `old_token_secrets[0] repeats token_secret`},
		{"old secret twice", host("old_token_secrets = [\"o\", \"o\"]\n"), `old_token_secrets[1] repeats`},
		{"too many old secrets", host("old_token_secrets = [\"1\", \"2\", \"3\", \"4\", \"5\"]\n"), `at most 4`},
		{"old seed not base32", host("old_otp_seeds = [\"not base32!\"]\n"), `old_otp_seeds[0]: not a base32 seed`},
		{"old seed repeats current", host("old_otp_seeds = [\"" + strings.ToLower(fixture.SeedA) + "\"]\n"), `old_otp_seeds[0] repeats otp_seed`},
		{"old secrets not a list", host("old_token_secrets = \"old\"\n"), `old_token_secrets`},
		{"log json debug", "[log]\nformat = \"json\"\nlevel = \"debug\"\n" + host(""), ""},
		{"log level warn", "[log]\nlevel = \"WARN\"\n" + host(""), ""},
		{"log format bad", "[log]\nformat = \"xml\"\n" + host(""), `log.format: "xml" is not text or json`},
		{"log level bad", "[log]\nlevel = \"loud\"\n" + host(""), `log.level: "loud"`},
		{"log unknown key", "[log]\nfile = \"/var/log/x\"\n" + host(""), `unknown key log.file`},
		{"metrics listen", "[metrics]\nlisten = \"127.0.0.1:9464\"\n" + host(""), ""},
		{"metrics listen bad", "[metrics]\nlisten = \"9464\"\n" + host(""), `metrics.listen: "9464" is not host:port`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := setup.Parse("c.toml", []byte(tc.body), config.Options{})
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err != "" && err == nil:
				t.Fatalf("accepted, want error %q", tc.err)
			case err != nil:
				if !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %q, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "cur-secret-xyz") {
					t.Fatalf("error quotes the secret: %v", err)
				}
			}
			if err == nil && tc.name == "old lists" {
				h := cfg.Hosts["a.example"]
				if len(h.TokenSecrets) != 3 || string(h.TokenSecrets[0]) != "cur-secret-xyz" || len(h.OTPSeeds) != 2 || h.OTPSeeds[0] != fixture.SeedA {
					t.Fatalf("host %+v: current first, then the old ones", h)
				}
			}
			if err == nil && tc.name == "log json debug" && (!cfg.LogJSON || cfg.LogLevel != slog.LevelDebug) {
				t.Fatalf("log settings not applied: %+v", cfg)
			}
		})
	}
}

// TestCheckConfigNotesOldSecrets: check-config reminds the admin of old
// secrets still accepted.
func TestCheckConfigNotesOldSecrets(t *testing.T) {
	path := fixture.WriteFile(t, fixture.ConfigPath(t), fixture.HostBlock("a.example", fixture.SecretB, fixture.SeedB, []string{fixture.SecretA}, nil)+
		fixture.HostBlock("b.example", fixture.SecretH, fixture.SeedH, nil, nil))
	var out, errb fixture.Buffer
	if code := RunCheckConfig(context.Background(), &cli.Env{Stdout: &out, Stderr: &errb}, []string{"-config", path}); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), `host "a.example" still accepts 1 old token secret(s) and 0 old otp seed(s)`) ||
		strings.Contains(out.String(), `host "b.example" still`) {
		t.Fatalf("check-config output:\n%s", out.String())
	}
}

// A Redis URL go-redis cannot parse is refused at start-up, by
// check-config and by a reload, naming the key and never quoting the URL
// (it may hold a password); one it parses is taken.
func TestRedisURLChecked(t *testing.T) {
	const password = "Sup3rRedisPassw0rd"
	host := fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil)
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"redis://u:" + password + "@127.0.0.1:6379/2", true},
		{"unix:///run/redis/redis.sock", true},
		{"http://u:" + password + "@h", false},
		{"redis://u:" + password + "@h/notadb", false},
	} {
		path := fixture.WriteFile(t, fixture.ConfigPath(t), "[replay]\nstore = \"redis\"\nredis_url = \""+tc.url+"\"\n"+host)
		_, err := loadConfig(path, config.Options{})
		var out, errb fixture.Buffer
		code := RunCheckConfig(context.Background(), &cli.Env{Stdout: &out, Stderr: &errb}, []string{"-config", path})
		if tc.ok {
			if err != nil || code != 0 {
				t.Errorf("%s: loadConfig %v, check-config exit %d: %s", tc.url, err, code, out.String())
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "replay.redis_url: not a valid") || code != 1 ||
			!strings.Contains(out.String(), "replay.redis_url") {
			t.Errorf("%s: loadConfig %v, check-config exit %d: %s", tc.url, err, code, out.String())
		}
		if strings.Contains(fmt.Sprint(err)+out.String()+errb.String(), password) {
			t.Errorf("%s: the password quoted", tc.url)
		}
	}
}

// A reload cannot change the replay store's settings: it warns that they
// take effect at the next restart, refuse_after_start and
// redis_min_replicas among them.
func TestRestartOnlyReplaySettings(t *testing.T) {
	for name, change := range map[string]func(*config.Config){
		"refuse_after_start": func(c *config.Config) { c.RefuseAfterStart = true },
		"redis_min_replicas": func(c *config.Config) { c.Redis.MinReplicas = 1 },
	} {
		old, cfg := &config.Config{Store: "memory"}, &config.Config{Store: "memory"}
		change(cfg)
		if got := restartOnly(old, cfg); !slices.Contains(got, "replay store settings") {
			t.Errorf("%s changed: restartOnly = %v", name, got)
		}
	}
}

// TestCheckNestingRealConfigs: the example and every test configuration
// written by this package's tests pass the scan.
func TestCheckNestingRealConfigs(t *testing.T) {
	example, err := os.ReadFile("../../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"config.toml.example": example,
		"test config":         []byte(readFileT(t, fixture.WriteConfig(t, t.TempDir(), "[log]\nlevel = \"debug\"\n"))),
		"rfc config":          []byte(readFileT(t, fixture.RFCConfig(t, "[replay]\nstore = \"redis\"\nredis_addrs = [\"127.0.0.1:1\"]\n"))),
	} {
		if err := config.CheckNesting(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func readFileT(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConfigFileOwner: a file owned by another user than root and the
// running one is refused (run as root: chown needs it).
func TestConfigFileOwner(t *testing.T) {
	fixture.RequireRoot(t, "it gives a file to another user")
	p := fixture.WriteConfig(t, t.TempDir(), "")
	if err := os.Chown(p, 65534, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Load(p, config.Options{}); err == nil || !strings.Contains(err.Error(), "owned by user 65534") {
		t.Fatalf("loadConfig of a file owned by user 65534 = %v, want it refused", err)
	}
	if _, err := config.LoadRelay(p, false); err == nil || !strings.Contains(err.Error(), "owned by user 65534") {
		t.Fatalf("loadRelaySettings of a file owned by user 65534 = %v, want it refused", err)
	}
}

// TestCheckConfigWhatServeNeeds: check-config reports what serve, run as
// -user, would fail on at start-up: an error for a directory it may not
// write in, a journal it may not write, a journal's directory that others
// than root or the user may write or own, a socket group it is not in or
// that does not exist; a warning for a directory that does not exist yet
// (systemd makes it). Before, check-config said "ok" to all of them.
func TestCheckConfigWhatServeNeeds(t *testing.T) {
	fixture.RequireRoot(t, "it checks what another user, nobody, may do with root's files")
	dir := openTempDir(t)
	closed := filepath.Join(dir, "closed")
	open := filepath.Join(dir, "open")
	for d, mode := range map[string]os.FileMode{closed: 0o700, open: 0o777} {
		if err := os.Mkdir(d, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	rootsJournal := filepath.Join(open, "journal")
	if err := os.WriteFile(rootsJournal, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A state directory of the user nobody's, as the package's is the
	// user tokenauthd's.
	nobodys := filepath.Join(dir, "nobodys")
	if err := os.Mkdir(nobodys, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(nobodys, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	sockIn := func(d string) string { return "socket = \"" + filepath.Join(d, "s.sock") + "\"" }
	tests := []struct {
		name, user, daemon, journal string
		code                        int
		want                        string
	}{
		{"all fine", "", "socket = %q", "", 0, "ok: 1 host(s)"},
		{"socket directory missing", "nobody", "socket = \"" + filepath.Join(dir, "none", "s.sock") + "\"", "", 0, "warning: the socket's directory " + filepath.Join(dir, "none") + " does not exist"},
		{"socket directory closed", "nobody", "socket = \"" + filepath.Join(closed, "s.sock") + "\"", "", 1, "error: user nobody may not create the socket in " + closed},
		{"directory above closed", "nobody", "socket = \"" + filepath.Join(closed, "sub", "s.sock") + "\"", "", 1, "error: user nobody may not reach " + filepath.Join(closed, "sub")},
		{"journal not writable", "nobody", "socket = \"" + filepath.Join(open, "s.sock") + "\"", rootsJournal, 1, "error: user nobody may not read and write the journal " + rootsJournal},
		{"journal directory others may write", "", sockIn(open), filepath.Join(open, "j"), 1, "error: others than its owner may write " + open},
		{"journal directory others may write, as its user", "nobody", sockIn(open), filepath.Join(open, "j"), 1, "error: others than its owner may write " + open},
		{"journal directory of its user", "nobody", sockIn(open), filepath.Join(nobodys, "j"), 0, "ok: 1 host(s)"},
		{"journal directory of another user", "root", sockIn(open), filepath.Join(nobodys, "j"), 1, "error: " + nobodys + ", its directory, is owned by user 65534"},
		{"no such group", "", "socket = \"" + filepath.Join(open, "s.sock") + "\"\nsocket_group = \"no-such-group-tokenauthd\"", "", 1, `error: [daemon] socket_group "no-such-group-tokenauthd": no such group`},
		{"not in the group", "nobody", "socket = \"" + filepath.Join(open, "s.sock") + "\"\nsocket_group = \"root\"", "", 1, `error: [daemon] socket_group "root": user nobody is not a member`},
		{"root may give it", "root", "socket = \"" + filepath.Join(open, "s.sock") + "\"\nsocket_group = \"root\"", "", 0, "ok: 1 host(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			daemon := tt.daemon
			if strings.Contains(daemon, "%q") {
				daemon = fmt.Sprintf(daemon, filepath.Join(open, "s.sock"))
			}
			extra := "[daemon]\n" + daemon + "\n"
			if tt.journal != "" {
				extra += fmt.Sprintf("[replay]\njournal = %q\n", tt.journal)
			}
			// Where the user may read it, as the package's recipe makes it.
			cfg := fixture.WriteConfig(t, open, extra)
			if err := os.Chmod(cfg, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"check-config", "-config", cfg}
			if tt.user != "" {
				args = append(args, "-user", tt.user)
			}
			code, out, _ := runCmd(t, "", args...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want %d, and %q in:\n%s", code, tt.code, tt.want, out)
			}
		})
	}
}

// TestCheckConfigCredentials: a configuration whose secrets are systemd
// credentials ("%d/...") is checked outside the service with -credentials
// ID:DIR (the unit's LoadCredential=) or -credentials DIR; without it,
// check-config says what to give.
func TestCheckConfigCredentials(t *testing.T) {
	secrets := t.TempDir()
	for name, v := range map[string]string{"a.example.token_secret": fixture.SecretA, "a.example.otp_seed": fixture.SeedA} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fixture.WriteFile(t, fixture.ConfigPath(t), "[hosts.\"a.example\"]\ntoken_secret_file = \"%d/secrets_a.example.token_secret\"\notp_seed_file = \"%d/secrets_a.example.otp_seed\"\n")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	if code, out, _ := runCmd(t, "", "check-config", "-config", cfg); code != 1 || !strings.Contains(out, "-credentials ID:DIR") {
		t.Errorf("without credentials: exit %d:\n%s", code, out)
	}
	if code, out, _ := runCmd(t, "", "check-config", "-config", cfg, "-credentials", "secrets:"+secrets); code != 0 || !strings.Contains(out, "ok: 1 host(s)") {
		t.Errorf("-credentials secrets:DIR: exit %d:\n%s", code, out)
	}
	// The service's own layout: the files named as systemd names them.
	service := t.TempDir()
	for _, name := range []string{"a.example.token_secret", "a.example.otp_seed"} {
		b, _ := os.ReadFile(filepath.Join(secrets, name))
		os.WriteFile(filepath.Join(service, "secrets_"+name), b, 0o600)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", service)
	if code, out, _ := runCmd(t, "", "check-config", "-config", cfg); code != 0 {
		t.Errorf("$CREDENTIALS_DIRECTORY: exit %d:\n%s", code, out)
	}
}

// check-config -user NAME must not say ok for a setup serve, run as NAME,
// cannot start with: a configuration file, a secret file or a JWT key set
// NAME may not read. (The package's permission recipe gives the
// configuration to root:tokenauthd 0640; a file left root's 0600 makes
// serve exit with "permission denied", and every login is refused.)
// Files named "%d/..." are systemd credentials, which systemd hands to
// the service whatever their modes on disk: those are not in question.
func TestAttackCheckConfigUserCannotRead(t *testing.T) {
	fixture.RequireRoot(t, "it checks what another user, nobody, may read of root's files")
	dir := openTempDir(t)
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := write("keys.json", fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":%q}]}`, base64.RawURLEncoding.EncodeToString(pub)), 0o600)
	secret := write("token_secret", fixture.SecretA+"\n", 0o600)
	daemon := fmt.Sprintf("[daemon]\nsocket = %q\n", filepath.Join(dir, "s.sock"))
	if err := os.Chmod(dir, 0o777); err != nil { // nobody may make the socket
		t.Fatal(err)
	}
	tests := []struct {
		name, config string
		mode         os.FileMode
		unreadable   string
	}{
		{"configuration root's only", daemon + fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil), 0o600, "config"},
		{"token secret file", daemon + fmt.Sprintf("[hosts.\"a.example\"]\ntoken_secret_file = %q\notp_seed = %q\n", secret, fixture.SeedA), 0o644, secret},
		{"JWT key set", daemon + fmt.Sprintf("[hosts.\"a.example\".jwt]\nkeys_file = %q\n", keys), 0o644, keys},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := write(fmt.Sprintf("config%d.toml", i), tt.config, tt.mode)
			if code, out, _ := runCmd(t, "", "check-config", "-config", cfg); code != 0 {
				t.Fatalf("check-config as the file's owner: exit %d:\n%s", code, out)
			}
			code, out, _ := runCmd(t, "", "check-config", "-config", cfg, "-user", "nobody")
			if code == 0 || strings.Contains(out, ": ok:") {
				t.Errorf("user nobody may not read %s, and check-config -user nobody says (exit %d):\n%s", tt.unreadable, code, out)
			}
		})
	}
}

// TestJWTKeyRotationOnReload: keys_file is read again on every reload, so
// keys rotate as the README says: the new key published beside the old
// (both accepted), then the old one dropped (refused), without a restart.
func TestJWTKeyRotationOnReload(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := fixture.NewJWTKey(t, dir, "old"), fixture.NewJWTKey(t, dir, "new")
	both := fixture.JoinSets(t, filepath.Join(dir, "both.jwks.json"), oldKey, newKey)
	path := fixture.ConfigPath(t)
	section := func(keys string) string { return "[hosts.\"a.example\".jwt]\nkeys_file = \"" + keys + "\"\n" }
	fixture.WriteFile(t, path, section(oldKey.Set))
	s := startSession(t, path)
	if !s.auth("alice", "a.example", oldKey.Mint(t, "alice", "a.example")) || s.auth("bob", "a.example", newKey.Mint(t, "bob", "a.example")) {
		t.Fatal("before the rotation: the old key must be accepted, the new one not yet")
	}
	fixture.WriteFile(t, path, section(both))
	s.reload()
	if !s.auth("alice", "a.example", oldKey.Mint(t, "alice", "a.example")) || !s.auth("bob", "a.example", newKey.Mint(t, "bob", "a.example")) {
		t.Fatal("both keys published: both must be accepted")
	}
	fixture.WriteFile(t, path, section(newKey.Set))
	s.reload()
	if s.auth("alice", "a.example", oldKey.Mint(t, "alice", "a.example")) || !s.auth("bob", "a.example", newKey.Mint(t, "bob", "a.example")) {
		t.Fatal("the old key dropped: it must be refused, the new one accepted")
	}
}

// TestCheckConfigUserOwnsSecrets: a secret file that belongs to the user
// serve runs as is that user's to own: check-config -user NAME, run as
// root, accepts it, as serve run as NAME does; without -user (root's own
// check) it is refused, as serve run as root would refuse it.
func TestCheckConfigUserOwnsSecrets(t *testing.T) {
	fixture.RequireRoot(t, "it gives a secret file to another user, nobody")
	dir := openTempDir(t)
	secret := filepath.Join(dir, "token_secret")
	if err := os.WriteFile(secret, []byte(fixture.SecretA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(secret, 65534, 65534); err != nil { // nobody's
		t.Fatal(err)
	}
	cfg := fixture.WriteFile(t, filepath.Join(dir, "config.toml"), fmt.Sprintf(
		"[daemon]\nsocket = %q\n[hosts.\"a.example\"]\ntoken_secret_file = %q\notp_seed = %q\n", filepath.Join(dir, "s.sock"), secret, fixture.SeedA))
	if err := os.Chmod(cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil { // nobody may make the socket
		t.Fatal(err)
	}
	if code, out, _ := runCmd(t, "", "check-config", "-config", cfg); code != 1 || !strings.Contains(out, "owned by user 65534") {
		t.Errorf("as root: exit %d, want 1 and the owner named:\n%s", code, out)
	}
	if code, out, _ := runCmd(t, "", "check-config", "-config", cfg, "-user", "nobody"); code != 0 || !strings.Contains(out, ": ok:") {
		t.Errorf("-user nobody, the file's owner: exit %d, want ok:\n%s", code, out)
	}
}

// openTempDir returns a temporary directory every user may reach (Go's
// are root's alone): what check-config -user nobody is asked about lies in
// it.
func openTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
