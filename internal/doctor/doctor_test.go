package doctor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/access"
	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// want is a finding a case expects: its severity, and words of its key,
// message, fix and file.
type want struct {
	sev  Severity
	key  string
	msg  string
	fix  string
	file string
}

// doctorCase is a machine, tokenauthd's and the servers' configurations
// from testdata ("" for none), and what doctor must find.
type doctorCase struct {
	name     string
	config   string // testdata/tokenauthd/...
	ejabberd string // testdata/ejabberd/...
	prosody  string // testdata/prosody/...
	setup    func(s *fakeSys)
	want     []want
	exit     int
}

// runCase runs doctor on a case's machine and returns the findings, what
// it printed and its exit status.
func runCase(t *testing.T, c doctorCase) ([]Finding, string, int) {
	t.Helper()
	s := cleanMachine(t)
	if c.config != "" {
		f := s.files["/etc/tokenauthd/config.toml"]
		f.disk = c.config
		s.files["/etc/tokenauthd/config.toml"] = f
	} else {
		delete(s.files, "/etc/tokenauthd/config.toml")
	}
	if c.ejabberd != "" {
		s.addFile(DefaultEjabberd, c.ejabberd)
		s.addFile("/etc/ejabberd/auth-included.yml", "testdata/ejabberd/auth-included.yml")
	}
	o := Options{System: s}
	if c.prosody != "" {
		s.withProsody(t)
		abs, err := filepath.Abs(c.prosody)
		if err != nil {
			t.Fatal(err)
		}
		s.addFile(abs, abs)
		o.Prosody = abs
		// The files it may include.
		for _, inc := range []string{"testdata/prosody/included.cfg.lua", "testdata/prosody/conf.d/localhost.cfg.lua"} {
			if p, err := filepath.Abs(inc); err == nil {
				s.addFile(p, p)
			}
		}
	}
	if c.setup != nil {
		c.setup(s)
	}
	var out bytes.Buffer
	o.Stdout = &out
	d := newDoctor(context.Background(), o)
	d.run(o)
	code := d.report(&out)
	return d.findings, out.String(), code
}

// check compares the findings with the wanted ones: each wanted one must
// be there, and no other error or warning.
func check(t *testing.T, c doctorCase, got []Finding, out string, code int) {
	t.Helper()
	used := make([]bool, len(got))
	for _, w := range c.want {
		found := false
		for i, f := range got {
			if !used[i] && f.Severity == w.sev && strings.Contains(f.Key, w.key) && strings.Contains(f.Message, w.msg) &&
				strings.Contains(f.Fix, w.fix) && strings.Contains(f.File, w.file) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("no %v finding with key %q, message %q, fix %q, file %q", w.sev, w.key, w.msg, w.fix, w.file)
		}
	}
	for i, f := range got {
		if !used[i] && f.Severity != Note {
			t.Errorf("unexpected finding: %s", formatFinding(f))
		}
	}
	if code != c.exit {
		t.Errorf("exit status %d, want %d", code, c.exit)
	}
	if strings.Contains(out, "test-secret") || strings.Contains(out, "JBSWY3DP") || strings.Contains(out, "SECRETHASH") {
		t.Errorf("the report quotes a secret:\n%s", out)
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}
}

const (
	cleanConfig = "testdata/tokenauthd/config.toml"
	sock        = "/run/tokenauthd/tokenauthd.sock"
)

// helperReadable makes tokenauthd's configuration the stdin/stdout
// helper's, as the README's ejabberd section says: root:ejabberd 0640.
func helperReadable(s *fakeSys) {
	f := s.files["/etc/tokenauthd/config.toml"]
	f.mode, f.uid, f.gid = 0o640, 0, gidEjabberd
	s.files["/etc/tokenauthd/config.toml"] = f
	delete(s.units, "tokenauthd.service")
}

func dropGroup(s *fakeSys, user string) {
	u := s.users[user]
	u.GIDs = slices.DeleteFunc(slices.Clone(u.GIDs), func(g int) bool { return g == gidClients })
	s.users[user] = u
}

func TestEjabberd(t *testing.T) {
	cases := []doctorCase{
		// The README's setup: relays in front of the daemon.
		{name: "clean", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml"},
		// The cache at its default: a replay is answered by ejabberd.
		{name: "cache by default", config: cleanConfig, ejabberd: "testdata/ejabberd/cache-default.yml", exit: 1,
			want: []want{{sev: Error, key: "auth_use_cache", msg: "is not set, and is on by default for host example.org", fix: "auth_use_cache: false"}}},
		// Off globally, on again for one host.
		{name: "cache on for a host", config: cleanConfig, ejabberd: "testdata/ejabberd/cache-host.yml", exit: 1,
			want: []want{{sev: Error, key: "host_config: example.net: auth_use_cache", msg: "is on for host example.net"}}},
		// Through a macro, spelt yes.
		{name: "cache through a macro", config: cleanConfig, ejabberd: "testdata/ejabberd/cache-macro.yml", exit: 1,
			want: []want{{sev: Error, key: "auth_use_cache", msg: "is on for host example.org"}}},
		// use_cache: off turns auth_use_cache off too.
		{name: "use_cache off", config: cleanConfig, ejabberd: "testdata/ejabberd/use-cache-off.yml"},
		// In an included file, which the finding names.
		{name: "cache in an included file", config: cleanConfig, ejabberd: "testdata/ejabberd/include.yml", exit: 1,
			want: []want{{sev: Error, key: "auth_use_cache", msg: "is on", file: "/etc/ejabberd/auth-included.yml"}}},
		// The helper alone, ejabberd's default pool on two processors.
		{name: "helper pool by default", config: cleanConfig, ejabberd: "testdata/ejabberd/helper-pool-default.yml", setup: helperReadable, exit: 1,
			want: []want{{sev: Error, key: "extauth_pool_size", msg: "extauth_pool_size is not set, and ejabberd starts one helper per processor (2 here) for host example.org", fix: "extauth_pool_size: 1"}}},
		// The same on one processor: a pool of one.
		{name: "helper pool by default, one processor", config: cleanConfig, ejabberd: "testdata/ejabberd/helper-pool-default.yml",
			setup: func(s *fakeSys) { helperReadable(s); s.cpus = 1 }},
		{name: "helper pool of 4", config: cleanConfig, ejabberd: "testdata/ejabberd/helper-pool-explicit.yml", setup: helperReadable, exit: 1,
			want: []want{{sev: Error, key: "extauth_pool_size", msg: "extauth_pool_size is 4 for host example.org, of the stdin/stdout helper /usr/bin/tokenauthd"}}},
		// Helpers that share Redis may be many.
		{name: "helper pool on Redis", config: "testdata/tokenauthd/redis.toml", ejabberd: "testdata/ejabberd/helper-pool-explicit.yml", setup: helperReadable},
		// The README's helper setup.
		{name: "helper", config: cleanConfig, ejabberd: "testdata/ejabberd/helper.yml", setup: helperReadable},
		// The helper cannot read a configuration that is the daemon's.
		{name: "helper config unreadable", config: cleanConfig, ejabberd: "testdata/ejabberd/helper.yml", exit: 1,
			want: []want{{sev: Error, key: "extauth_program", msg: "run as ejabberd, cannot read its configuration /etc/tokenauthd/config.toml", fix: "chown root:ejabberd"}}},
		// tokenauthd refuses a configuration others may write.
		{name: "helper config group-writable", config: cleanConfig, ejabberd: "testdata/ejabberd/helper.yml",
			setup: func(s *fakeSys) {
				helperReadable(s)
				f := s.files["/etc/tokenauthd/config.toml"]
				f.mode = 0o660
				s.files["/etc/tokenauthd/config.toml"] = f
			}, exit: 1,
			want: []want{{sev: Error, key: "extauth_program", msg: "writable by others than its owner"}}},
		// The helper has no section for the host.
		{name: "helper without the host", config: cleanConfig, ejabberd: "testdata/ejabberd/cache-host.yml",
			setup: func(s *fakeSys) {
				helperReadable(s)
				s.files[DefaultEjabberd] = fakeFile{mode: 0o644, data: `hosts: [example.org, example.net]
auth_method: [external]
extauth_program: "/usr/bin/tokenauthd -protocol ejabberd"
extauth_pool_size: 1
auth_use_cache: false
`}
			}, exit: 1,
			want: []want{{sev: Error, key: "extauth_program", msg: `host example.net authenticates with /usr/bin/tokenauthd, whose configuration /etc/tokenauthd/config.toml has no [hosts."example.net"] section`}}},
		// A program ejabberd's user may not run.
		{name: "program not executable", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) { s.files["/usr/bin/tokenauthd"] = fakeFile{mode: 0o750, data: "\x7fELF"} }, exit: 1,
			want: []want{{sev: Error, key: "extauth_program", msg: "ejabberd cannot run /usr/bin/tokenauthd as its user ejabberd: /usr/bin/tokenauthd (-rwxr-x--- root:root) is not executable by ejabberd"}}},
		// A program ejabberd.service hides.
		{name: "program in a home", config: cleanConfig, ejabberd: "testdata/ejabberd/home-helper.yml",
			setup: func(s *fakeSys) { s.files["/root/go/bin/tokenauthd"] = fakeFile{mode: 0o755, data: "\x7fELF"} }, exit: 1,
			want: []want{{sev: Error, key: "extauth_program", msg: "ejabberd.service has ProtectHome=yes: its processes cannot see /root"}}},
		// A relay whose user is not in the socket's group.
		{name: "ejabberd not in the group", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) { dropGroup(s, "ejabberd") }, exit: 1,
			want: []want{{sev: Error, key: "extauth_program", msg: "ejabberd's user ejabberd is not in tokenauthd-clients", fix: "adduser ejabberd tokenauthd-clients"}}},
		// A drop-in that gives the group to the service is as good.
		{name: "group from the unit", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) {
				dropGroup(s, "ejabberd")
				s.units["ejabberd.service"] = append(s.units["ejabberd.service"], UnitFile{
					Path: "/etc/systemd/system/ejabberd.service.d/tokenauthd.conf", Text: "[Service]\nSupplementaryGroups=tokenauthd-clients\n"})
			}},
		// A socket under /tmp, which ejabberd.service's PrivateTmp hides;
		// the daemon is not there either.
		{name: "socket under /tmp", config: cleanConfig, ejabberd: "testdata/ejabberd/tmp-socket.yml", exit: 1,
			want: []want{
				{sev: Error, key: "extauth_program", msg: "the relay dials /tmp/tokenauthd.sock (its -socket), but ejabberd.service has PrivateTmp=true"},
				{sev: Error, key: "extauth_program", msg: "but the daemon listens on /run/tokenauthd/tokenauthd.sock"},
				{sev: Error, key: "extauth_program", msg: "no daemon socket at /tmp/tokenauthd.sock"},
			}},
		// The relay cannot read the daemon's configuration and so dials
		// the default socket, where the daemon is not.
		{name: "relay misses the daemon's socket", config: "testdata/tokenauthd/other-socket.toml", ejabberd: "testdata/ejabberd/clean.yml", exit: 1,
			want: []want{{sev: Error, key: "extauth_program",
				msg: "the relay dials /run/tokenauthd/tokenauthd.sock (the default, as ejabberd cannot read /etc/tokenauthd/config.toml), but the daemon listens on /run/tokenauthd/other.sock"}}},
		// The relay reads a configuration it can read, and refuses one
		// others may write.
		{name: "relay's configuration group-writable", config: "testdata/tokenauthd/other-socket.toml", ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) {
				s.files["/etc/tokenauthd/config.toml"] = fakeFile{mode: 0o664, gid: gidEjabberd, disk: "testdata/tokenauthd/other-socket.toml"}
				delete(s.units, "tokenauthd.service")
			}, exit: 1,
			want: []want{{sev: Error, key: "extauth_program", msg: "the relay, run as ejabberd, reads /etc/tokenauthd/config.toml, which is writable by others than its owner"}}},
		// A relay that can read the daemon's configuration dials its socket.
		{name: "relay reads the socket", config: "testdata/tokenauthd/other-socket.toml", ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) {
				helperReadable(s)
				s.files["/run/tokenauthd/other.sock"] = s.files[sock]
				s.daemons["/run/tokenauthd/other.sock"] = s.daemons[sock]
			}},
		// FAST tokens, by default for 30 days.
		{name: "mod_auth_fast", config: cleanConfig, ejabberd: "testdata/ejabberd/fast.yml",
			want: []want{{sev: Warning, key: "mod_auth_fast", msg: "for 30 days (token_lifetime's default)"}}},
		{name: "mod_auth_fast for a host", config: cleanConfig, ejabberd: "testdata/ejabberd/fast-host.yml",
			want: []want{{sev: Warning, key: "mod_auth_fast", msg: "for 14 days (token_lifetime)"}}},
		// Another program than tokenauthd: not doctor's business, even
		// with the cache on.
		{name: "another program", config: cleanConfig, ejabberd: "testdata/ejabberd/cache-default.yml",
			setup: func(s *fakeSys) {
				s.files[DefaultEjabberd] = fakeFile{mode: 0o644, data: "hosts: [example.org]\nauth_method: external\nextauth_program: /usr/local/bin/ldap-auth\n"}
				s.files["/usr/local/bin/ldap-auth"] = fakeFile{mode: 0o755, data: "#!/usr/bin/python3\nimport ldap\n"}
			},
			want: []want{{sev: Note, key: "extauth_program", msg: `host example.org: "/usr/local/bin/ldap-auth" does not run tokenauthd`}}},
		// No external authentication: nothing to check.
		{name: "no external host", config: cleanConfig, ejabberd: "testdata/ejabberd/internal.yml",
			want: []want{{sev: Note, key: "auth_method", msg: "ejabberd does not ask tokenauthd"}}},
		{name: "not YAML", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) {
				s.files[DefaultEjabberd] = fakeFile{mode: 0o644, data: "hosts: [example.org\nauth_method: x\n"}
			}, exit: 1,
			want: []want{{sev: Error, msg: "cannot read it as ejabberd would", file: DefaultEjabberd}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, out, code := runCase(t, c)
			check(t, c, got, out, code)
		})
	}
}

func TestDaemon(t *testing.T) {
	cases := []doctorCase{
		{name: "no socket", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) { delete(s.files, sock) }, exit: 1,
			want: []want{{sev: Error, key: "extauth_program", msg: "no daemon socket at " + sock}}},
		// Mode 0600: the group does not let ejabberd in.
		{name: "socket not for the group", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) {
				s.files[sock] = fakeFile{mode: fs.ModeSocket | 0o600, uid: uidTokenauthd, gid: gidClients}
			}, exit: 1,
			want: []want{{sev: Error, msg: "ejabberd cannot connect to " + sock + ": " + sock + " (Srw------- tokenauthd:tokenauthd-clients) is not writable by ejabberd"}}},
		// A directory on the way that is the daemon's alone.
		{name: "socket directory closed", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) {
				s.files["/run/tokenauthd"] = fakeFile{mode: fs.ModeDir | 0o700, uid: uidTokenauthd, gid: gidTokenauthd}
			}, exit: 1,
			want: []want{{sev: Error, msg: "/run/tokenauthd (drwx------ tokenauthd:tokenauthd) does not let ejabberd through"}}},
		// A socket no daemon answers on.
		{name: "daemon not answering", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) { s.daemons[sock] = nil }, exit: 1,
			want: []want{{sev: Error, msg: "the daemon at " + sock + " does not answer"}}},
		{name: "daemon not listening", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) { delete(s.daemons, sock) }, exit: 1,
			want: []want{{sev: Error, msg: "connection refused"}}},
		// With no XMPP server configured, the daemon's own socket.
		{name: "daemon alone", config: cleanConfig,
			setup: func(s *fakeSys) { s.daemons[sock] = nil }, exit: 1,
			want: []want{{sev: Error, key: "daemon.socket", msg: "does not answer"}}},
		{name: "clock not synchronised", config: cleanConfig,
			setup: func(s *fakeSys) { s.clock = ClockStatus{MaxError: 16 * time.Second} },
			want:  []want{{sev: Warning, key: "clock", msg: "not synchronised"}}},
		{name: "clock error large", config: cleanConfig,
			setup: func(s *fakeSys) { s.clock = ClockStatus{Synchronised: true, MaxError: 5 * time.Second} },
			want:  []want{{sev: Warning, key: "clock", msg: "at 5s only"}}},
		{name: "clock unknown", config: cleanConfig,
			setup: func(s *fakeSys) { s.clockErr = fmt.Errorf("adjtimex: operation not permitted") },
			want:  []want{{sev: Note, key: "clock", msg: "operation not permitted"}}},
		// tokenauthd's configuration: what check-config says.
		{name: "unknown key", config: "testdata/tokenauthd/unknown-key.toml", exit: 1,
			want: []want{{sev: Error, msg: "tokenauthd refuses it: unknown key replay.jornal", file: "/etc/tokenauthd/config.toml"}}},
		{name: "seed not base32", config: "testdata/tokenauthd/bad-seed.toml", exit: 1,
			want: []want{{sev: Error, msg: `tokenauthd refuses it: hosts."example.org".otp_seed: not a base32 seed`}}},
		{name: "nonces of any length", config: "testdata/tokenauthd/nonce-any.toml",
			want: []want{{sev: Warning, msg: "nonce_digits = 0"}}},
		{name: "credentials", config: "testdata/tokenauthd/credentials.toml",
			want: []want{{sev: Note, msg: "systemd credentials"}}},
		// Hosts where every name exists: isuser = true, set or unset
		// (isuser = false and "seen" are not warned of).
		{name: "every name exists", config: "testdata/tokenauthd/every-name.toml",
			want: []want{
				{sev: Warning, msg: `host "a.example.org": isuser = true (or unset): every name exists`, fix: `set isuser = "seen" in [hosts."a.example.org"]`},
				{sev: Warning, msg: `host "b.example.org": isuser = true (or unset): every name exists`, fix: `set isuser = "seen" in [hosts."b.example.org"]`},
			}},
		{name: "daemon cannot read its configuration", config: cleanConfig,
			setup: func(s *fakeSys) {
				s.files["/etc/tokenauthd/config.toml"] = fakeFile{mode: 0o600, disk: cleanConfig}
			}, exit: 1,
			want: []want{{sev: Error, msg: "the daemon, run by tokenauthd.service as tokenauthd, cannot read it", fix: "chown root:tokenauthd /etc/tokenauthd/config.toml && chmod 0640"}}},
		{name: "configuration readable by all", config: cleanConfig,
			setup: func(s *fakeSys) {
				s.files["/etc/tokenauthd/config.toml"] = fakeFile{mode: 0o644, uid: uidTokenauthd, disk: cleanConfig}
			},
			want: []want{{sev: Warning, msg: "readable by every user (mode 0644)"}}},
		// No configuration at all: noted, and nothing else.
		{name: "nothing configured",
			want: []want{{sev: Note, msg: "no tokenauthd configuration here"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, out, code := runCase(t, c)
			check(t, c, got, out, code)
		})
	}
}

func TestProsody(t *testing.T) {
	cases := []doctorCase{
		{name: "clean", config: cleanConfig, prosody: "testdata/prosody/clean.cfg.lua"},
		{name: "tokenauthd's host on another provider", config: cleanConfig, prosody: "testdata/prosody/no-auth.cfg.lua", exit: 1,
			want: []want{{sev: Error, key: `VirtualHost "example.org": authentication`, msg: `Prosody authenticates it with "internal_hashed"`}}},
		{name: "host without secrets", config: cleanConfig, prosody: "testdata/prosody/unknown-host.cfg.lua", exit: 1,
			want: []want{{sev: Error, key: `VirtualHost "chat.example.org"`, msg: "no [hosts.\"chat.example.org\"] section"}}},
		{name: "tokenauthd's host not served", config: cleanConfig, prosody: "testdata/prosody/other-host.cfg.lua", exit: 1,
			want: []want{
				{sev: Error, key: `VirtualHost "example.net"`, msg: "no [hosts.\"example.net\"] section"},
				{sev: Warning, key: `hosts."example.org"`, msg: "which Prosody"},
			}},
		// The package's module directory is not in plugin_paths.
		{name: "module not found", config: cleanConfig, prosody: "testdata/prosody/no-plugin-path.cfg.lua", exit: 1,
			want: []want{{sev: Error, key: "plugin_paths", msg: "does not find mod_auth_tokenauthd.lua", fix: `plugin_paths = { "/usr/share/tokenauthd/prosody" }`}}},
		{name: "module not installed", config: cleanConfig, prosody: "testdata/prosody/no-plugin-path.cfg.lua",
			setup: func(s *fakeSys) { delete(s.files, "/usr/share/tokenauthd/prosody/mod_auth_tokenauthd.lua") }, exit: 1,
			want: []want{{sev: Error, key: "plugin_paths", msg: "does not find mod_auth_tokenauthd.lua", fix: "install -D -m 644"}}},
		{name: "module unreadable", config: cleanConfig, prosody: "testdata/prosody/clean.cfg.lua",
			setup: func(s *fakeSys) {
				s.files["/usr/share/tokenauthd/prosody/mod_auth_tokenauthd.lua"] = fakeFile{mode: 0o600, data: "--"}
			}, exit: 1,
			want: []want{{sev: Error, key: "plugin_paths", msg: "Prosody cannot read /usr/share/tokenauthd/prosody/mod_auth_tokenauthd.lua"}}},
		// Another socket than the daemon's, where no daemon is.
		{name: "socket", config: cleanConfig, prosody: "testdata/prosody/socket.cfg.lua", exit: 1,
			want: []want{
				{sev: Error, key: "tokenauthd_socket", msg: "host example.org dials /tmp/tokenauthd.sock, but the daemon listens on " + sock, fix: `tokenauthd_socket = "` + sock + `"`},
				{sev: Error, key: "tokenauthd_socket", msg: "no daemon socket at /tmp/tokenauthd.sock"},
			}},
		// The same with PrivateTmp given to prosody.service.
		{name: "socket hidden by PrivateTmp", config: cleanConfig, prosody: "testdata/prosody/socket.cfg.lua",
			setup: func(s *fakeSys) {
				s.units["prosody.service"] = append(s.units["prosody.service"], UnitFile{
					Path: "/etc/systemd/system/prosody.service.d/harden.conf", Text: "[Service]\nPrivateTmp=yes\n"})
			}, exit: 1,
			want: []want{
				{sev: Error, key: "tokenauthd_socket", msg: "prosody.service has PrivateTmp=true"},
				{sev: Error, key: "tokenauthd_socket", msg: "but the daemon listens on"},
				{sev: Error, key: "tokenauthd_socket", msg: "no daemon socket at /tmp/tokenauthd.sock"},
			}},
		{name: "prosody not in the group", config: cleanConfig, prosody: "testdata/prosody/clean.cfg.lua",
			setup: func(s *fakeSys) { dropGroup(s, "prosody") }, exit: 1,
			want: []want{{sev: Error, key: "tokenauthd_socket", msg: "Prosody's user prosody is not in tokenauthd-clients", fix: "adduser prosody tokenauthd-clients && systemctl restart prosody"}}},
		// SASL2/FAST for every host, OAuth2 for one with a lifetime of
		// its own.
		{name: "FAST and OAuth2", config: cleanConfig, prosody: "testdata/prosody/fast.cfg.lua",
			want: []want{
				{sev: Warning, key: "sasl2_fast", msg: "FAST token (XEP-0484) it can log in with again and again, without tokenauthd, for 21 days (sasl2_fast_token_ttl's default)"},
				{sev: Warning, key: "http_oauth2", msg: "OAuth2 refresh token it can log in with again and again, without tokenauthd, for 1 day (oauth2_refresh_token_ttl)"},
			}},
		{name: "FAST disabled for the host", config: cleanConfig, prosody: "testdata/prosody/fast-disabled.cfg.lua"},
		{name: "FAST in an included file", config: cleanConfig, prosody: "testdata/prosody/include.cfg.lua",
			want: []want{{sev: Warning, key: "sasl2_fast", msg: "for host example.org"}}},
		// mod_auth_external_insecure with a helper of its own memory.
		{name: "external helper", config: cleanConfig, prosody: "testdata/prosody/external.cfg.lua",
			setup: func(s *fakeSys) {
				s.files["/etc/tokenauthd/config.toml"] = fakeFile{mode: 0o640, gid: gidProsody, disk: cleanConfig}
				delete(s.units, "tokenauthd.service")
			},
			want: []want{{sev: Warning, key: "external_auth_command", msg: "its replay store is the helper's memory"}}},
		{name: "external helper on Redis", config: "testdata/tokenauthd/redis.toml", prosody: "testdata/prosody/external.cfg.lua",
			setup: func(s *fakeSys) {
				s.files["/etc/tokenauthd/config.toml"] = fakeFile{mode: 0o640, gid: gidProsody, disk: "testdata/tokenauthd/redis.toml"}
				delete(s.units, "tokenauthd.service")
			}},
		{name: "syntax error", config: cleanConfig, prosody: "testdata/prosody/syntax.cfg.lua", exit: 1,
			want: []want{{sev: Error, msg: "Prosody cannot load it", fix: "check config"}}},
		// Prosody as Debian installs it: tokenauthd not in use.
		{name: "Debian's configuration", prosody: "testdata/prosody/debian.cfg.lua",
			want: []want{{sev: Note, key: "authentication", msg: "Prosody does not ask it"}}},
		{name: "prosody not installed", config: cleanConfig, prosody: "testdata/prosody/clean.cfg.lua",
			setup: func(s *fakeSys) { delete(s.files, "/usr/bin/prosodyctl") },
			want:  []want{{sev: Note, msg: "Prosody is not installed"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, out, code := runCase(t, c)
			check(t, c, got, out, code)
			// The syntax error is reported by its line alone.
			if c.name == "syntax error" && !strings.Contains(out, "syntax.cfg.lua:3:") {
				t.Errorf("the syntax error's line is not given:\n%s", out)
			}
		})
	}
}

// TestEjabberdEveryFinding: a file's findings are all reported, not only
// the first of a host.
func TestEjabberdEveryFinding(t *testing.T) {
	cases := []doctorCase{
		// A program ejabberd cannot run is one finding; the file's others
		// (the pool of helpers) are reported too.
		{name: "program hidden, pool of 4", config: cleanConfig, ejabberd: "testdata/ejabberd/tmp-helper-pool.yml",
			setup: func(s *fakeSys) {
				helperReadable(s)
				s.files["/tmp/tokenauthd"] = fakeFile{mode: 0o755, data: "\x7fELF"}
			}, exit: 1,
			want: []want{
				{sev: Error, key: "extauth_program", msg: "ejabberd.service has PrivateTmp=true"},
				{sev: Error, key: "extauth_pool_size", msg: "extauth_pool_size is 4 for host example.org, of the stdin/stdout helper /tmp/tokenauthd"},
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, out, code := runCase(t, c)
			check(t, c, got, out, code)
		})
	}
}

// TestEjabberdFiles: who can change ejabberd's files, and what doctor
// reads of them.
func TestEjabberdFiles(t *testing.T) {
	cases := []doctorCase{
		// Debian gives ejabberd.yml to the ejabberd user: ejabberd's own
		// files are not a finding, nor is an included file it owns.
		{name: "files ejabberd's", config: cleanConfig, ejabberd: "testdata/ejabberd/include.yml",
			setup: func(s *fakeSys) {
				for _, p := range []string{DefaultEjabberd, "/etc/ejabberd/auth-included.yml"} {
					f := s.files[p]
					f.mode, f.uid, f.gid = 0o600, uidEjabberd, gidEjabberd
					s.files[p] = f
				}
			}, exit: 1,
			want: []want{{sev: Error, key: "auth_use_cache", msg: "is on", file: "/etc/ejabberd/auth-included.yml"}}},
		// An included file, or its directory, that another user can
		// change.
		{name: "included file nobody's", config: cleanConfig, ejabberd: "testdata/ejabberd/include.yml",
			setup: func(s *fakeSys) {
				f := s.files["/etc/ejabberd/auth-included.yml"]
				f.uid = uidNobody
				s.files["/etc/ejabberd/auth-included.yml"] = f
				s.files["/etc/ejabberd"] = fakeFile{mode: fs.ModeDir | 0o775, gid: gidProsody}
			}, exit: 1,
			want: []want{
				{sev: Error, key: "auth_use_cache", msg: "is on", file: "/etc/ejabberd/auth-included.yml"},
				{sev: Error, file: "/etc/ejabberd", msg: "on the way to ejabberd's configuration " + DefaultEjabberd + ": the group prosody can change it, and whoever can controls ejabberd",
					fix: "chmod go-w /etc/ejabberd"},
				{sev: Error, file: "/etc/ejabberd/auth-included.yml", msg: "ejabberd's configuration: nobody (its owner) can change it",
					fix: "chown root /etc/ejabberd/auth-included.yml && chmod go-w /etc/ejabberd/auth-included.yml"},
			}},
		// A file ejabberd cannot read is not read by doctor either, nor
		// quoted: not /etc/shadow, not a key.
		{name: "include aimed at /etc/shadow", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) {
				s.files[DefaultEjabberd] = fakeFile{mode: 0o644, data: "hosts: [example.org]\ninclude_config_file: /etc/shadow\n"}
				s.files["/etc/shadow"] = fakeFile{mode: 0o640, gid: 42, data: "root:$y$j9T$SECRETHASH:19000:0:99999:7:::\n"}
			}, exit: 1,
			want: []want{{sev: Error, file: DefaultEjabberd, msg: "/etc/shadow: ejabberd, run as ejabberd, cannot read it (/etc/shadow (-rw-r----- root:42) is not readable by ejabberd): doctor does not read it either"}}},
		// The helper's -config, or a wrapper script, that ejabberd's
		// user cannot read is not read by doctor either.
		{name: "helper's -config aimed at /etc/shadow", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) {
				s.files[DefaultEjabberd] = fakeFile{mode: 0o644, data: "hosts: [example.org]\nauth_method: [external]\nauth_use_cache: false\nextauth_pool_size: 1\n" +
					"extauth_program: \"/usr/bin/tokenauthd -config /etc/shadow\"\n"}
				s.files["/etc/shadow"] = fakeFile{mode: 0o640, gid: 42, data: "[SECRETHASH\nroot:$y$j9T$SECRETHASH:19000:0:99999:7:::\n"}
			}, exit: 1,
			want: []want{{sev: Error, key: "extauth_program", msg: "the helper, run as ejabberd, cannot read its configuration /etc/shadow"}}},
		{name: "wrapper script ejabberd cannot read", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) {
				s.files[DefaultEjabberd] = fakeFile{mode: 0o644, data: "hosts: [example.org]\nauth_method: [external]\nauth_use_cache: false\nextauth_pool_size: 1\n" +
					"extauth_program: /usr/local/bin/wrapper\n"}
				s.files["/usr/local/bin/wrapper"] = fakeFile{mode: 0o700, data: "#!/bin/sh\nexec /usr/bin/tokenauthd connect -socket /run/SECRETHASH.sock\n"}
			}, exit: 1,
			want: []want{{sev: Error, key: "extauth_program", msg: "ejabberd cannot run /usr/local/bin/wrapper"}}},
		{name: "include ejabberd's sandbox hides", config: cleanConfig, ejabberd: "testdata/ejabberd/clean.yml",
			setup: func(s *fakeSys) {
				s.files[DefaultEjabberd] = fakeFile{mode: 0o644, data: "hosts: [example.org]\ninclude_config_file: /root/keys.yml\n"}
				s.files["/root/keys.yml"] = fakeFile{mode: 0o644, data: "SECRETHASH: x\n"}
			}, exit: 1,
			want: []want{{sev: Error, file: DefaultEjabberd, msg: "ProtectHome=yes"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, out, code := runCase(t, c)
			check(t, c, got, out, code)
		})
	}
}

// TestProsodyFiles: who can change Prosody's files, which doctor runs as
// Lua.
func TestProsodyFiles(t *testing.T) {
	cases := []doctorCase{
		// Files and directories on the way to the configuration that
		// anyone but root can change.
		{name: "included file nobody's", config: cleanConfig, prosody: "testdata/prosody/include.cfg.lua",
			setup: func(s *fakeSys) {
				s.files[testdata(t, "prosody/included.cfg.lua")] = fakeFile{mode: 0o644, uid: uidNobody, gid: gidNobody}
			}, exit: 1,
			want: []want{
				{sev: Warning, key: "sasl2_fast", msg: "for host example.org"},
				{sev: Error, file: testdata(t, "prosody/included.cfg.lua"), msg: "Prosody's configuration: nobody (its owner) can change it, and whoever can controls Prosody",
					fix: "chown root " + testdata(t, "prosody/included.cfg.lua") + " && chmod go-w " + testdata(t, "prosody/included.cfg.lua")},
			}},
		{name: "wildcard's directory everyone's", prosody: "testdata/prosody/debian.cfg.lua",
			setup: func(s *fakeSys) { s.files[testdata(t, "prosody/conf.d")] = fakeFile{mode: fs.ModeDir | 0o777} }, exit: 1,
			want: []want{
				{sev: Note, key: "authentication", msg: "Prosody does not ask it"},
				{sev: Error, file: testdata(t, "prosody/conf.d"), msg: "on the way to Prosody's configuration " + testdata(t, "prosody/conf.d/localhost.cfg.lua") + ": every user can change it",
					fix: "chmod go-w " + testdata(t, "prosody/conf.d")},
			}},
		{name: "configuration Prosody's group may write", config: cleanConfig, prosody: "testdata/prosody/clean.cfg.lua",
			setup: func(s *fakeSys) {
				s.files[testdata(t, "prosody/clean.cfg.lua")] = fakeFile{mode: 0o664, gid: gidProsody, disk: testdata(t, "prosody/clean.cfg.lua")}
			}, exit: 1,
			want: []want{{sev: Error, file: testdata(t, "prosody/clean.cfg.lua"), msg: "the group prosody can change it"}}},
		// Files the configuration's code names and that do not exist
		// are no finding, and do not crowd the report.
		{name: "records of files that do not exist", config: cleanConfig, prosody: "testdata/prosody/forged-records.cfg.lua",
			setup: func(s *fakeSys) {
				s.addFile(testdata(t, "../../../prosody/example.prosody.cfg.lua"), testdata(t, "../../../prosody/example.prosody.cfg.lua"))
			}},
		// Debian's: root's, Prosody's group may read it.
		{name: "configuration root:prosody 0640", config: cleanConfig, prosody: "testdata/prosody/clean.cfg.lua",
			setup: func(s *fakeSys) {
				s.files[testdata(t, "prosody/clean.cfg.lua")] = fakeFile{mode: 0o640, gid: gidProsody, disk: testdata(t, "prosody/clean.cfg.lua")}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, out, code := runCase(t, c)
			check(t, c, got, out, code)
			if strings.Contains(out, "/nonexistent/") {
				t.Errorf("the report names files that do not exist:\n%s", out)
			}
		})
	}
}

// TestExplicitMissing: a file named on the command line must exist.
func TestExplicitMissing(t *testing.T) {
	s := cleanMachine(t)
	var out bytes.Buffer
	code := Check(context.Background(), Options{Ejabberd: "/etc/ejabberd/nope.yml", Stdout: &out, System: s})
	if code != 1 || !strings.Contains(out.String(), "error: /etc/ejabberd/nope.yml: cannot read ejabberd's configuration") {
		t.Errorf("exit %d, report:\n%s", code, out.String())
	}
	out.Reset()
	code = Check(context.Background(), Options{Stdout: &out, System: s, Getenv: func(k string) string {
		if k == "TOKENAUTHD_CONFIG" {
			return "/etc/tokenauthd/other.toml"
		}
		return ""
	}})
	if code != 1 || !strings.Contains(out.String(), "error: /etc/tokenauthd/other.toml: cannot read tokenauthd's configuration") {
		t.Errorf("$TOKENAUTHD_CONFIG absent: exit %d, report:\n%s", code, out.String())
	}
}

func TestReport(t *testing.T) {
	tests := []struct {
		findings []Finding
		want     string
		exit     int
	}{
		{nil, "doctor: no problems found\n", 0},
		// Notes are not problems.
		{[]Finding{{Severity: Note, File: "/f", Message: "skipped"}}, "note: /f: skipped\ndoctor: no problems found\n", 0},
		{[]Finding{{Severity: Warning, Key: "clock", Message: "m", Fix: "f"}}, "warning: clock: m; fix: f\ndoctor: 0 errors, 1 warning\n", 0},
		{[]Finding{
			{Severity: Error, File: "/e.yml", Line: 12, Key: "auth_use_cache", Message: "on", Fix: "off"},
			{Severity: Error, File: "/e.yml", Message: "two"},
			{Severity: Warning, Message: "w"},
			{Severity: Warning, Message: "w2"},
		}, "error: /e.yml:12: auth_use_cache: on; fix: off\nerror: /e.yml: two\nwarning: w\nwarning: w2\ndoctor: 2 errors, 2 warnings\n", 1},
	}
	for _, tt := range tests {
		d := &doctor{findings: tt.findings}
		var out bytes.Buffer
		if code := d.report(&out); code != tt.exit || out.String() != tt.want {
			t.Errorf("report(%v) = %d, %q; want %d, %q", tt.findings, code, out.String(), tt.exit, tt.want)
		}
	}
}

// TestReportBounded: a finding is one line, whatever a file put in it, and
// the report has a bounded number of them.
func TestReportBounded(t *testing.T) {
	d := &doctor{}
	for i := range maxFindings + 5 {
		d.add(Finding{Severity: Error, Key: fmt.Sprintf("host%d\nerror: forged", i), Message: strings.Repeat("x", 4*maxField) + "\x1b[2J\xff"})
	}
	var out bytes.Buffer
	if code := d.report(&out); code != 1 {
		t.Errorf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != maxFindings+2 {
		t.Fatalf("%d lines, want %d", len(lines), maxFindings+2)
	}
	if got := lines[len(lines)-2]; got != "doctor: 5 more findings not shown" {
		t.Errorf("got %q", got)
	}
	if got := lines[len(lines)-1]; got != fmt.Sprintf("doctor: %d errors, 0 warnings", maxFindings+5) {
		t.Errorf("got %q", got)
	}
	for _, l := range lines[:maxFindings] {
		if !strings.HasPrefix(l, "error: host") || len(l) > 3*maxField || strings.ContainsAny(l, "\x1b\r") {
			t.Fatalf("line not cleaned: %q", l)
		}
	}
	// A fix too long for a line is not cut inside a quoted word: it is
	// not shown.
	long := Finding{Severity: Error, Message: "m", Fix: sh("chmod", "644", strings.Repeat("a", maxField)+" b")}
	if got, want := formatFinding(long), "error: m; fix: not shown: "; !strings.HasPrefix(got, want) || strings.Contains(got, "'") {
		t.Errorf("a long fix: %q", got)
	}
	// Nor one whose words clean would have to change: the shell would
	// read \x0a where the file's name has a newline.
	for _, path := range []string{"/etc/a\nb", "/etc/a\x1b[2Jb", "/etc/a\xffb"} {
		f := Finding{Severity: Error, Message: "m", Fix: sh("chmod", "go-w", path)}
		if got := formatFinding(f); strings.Contains(got, "chmod") {
			t.Errorf("a fix for %q: %q", path, got)
		}
	}
	if !strings.Contains(clean("a\x1bb\xffc"), `a\x1bb\xffc`) {
		t.Errorf("clean = %q", clean("a\x1bb\xffc"))
	}
}

func TestCommandUsage(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-ejabberd", ""}} {
		var stdout, stderr bytes.Buffer
		e := &cli.Env{Stdout: &stdout, Stderr: &stderr}
		if code := Run(context.Background(), e, args); code != 2 {
			t.Errorf("doctor %q: exit %d, want 2", args, code)
		}
		if stdout.Len() != 0 || !strings.Contains(stderr.String(), "usage: tokenauthd doctor") {
			t.Errorf("doctor %q: stdout %q, stderr %q", args, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), &cli.Env{Stdout: &stdout, Stderr: &stderr}, []string{"-h"}); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, flag := range []string{"-config", "-ejabberd", "-prosody"} {
		if !strings.Contains(stderr.String(), flag) {
			t.Errorf("-h does not list %s:\n%s", flag, stderr.String())
		}
	}
}

// Doctor runs Prosody's configuration loader with the Lua interpreter, as
// root. Lua's default package.path and package.cpath hold the working
// directory ("./?.lua", "./?/init.lua", "./?.so"), and prosody.lua
// requires "prosody.loader" and "loader", which Prosody 0.12 does not
// have: whoever can write in the directory root runs doctor from (/tmp, a
// user's home) has those found there, and runs code as root. prosodyctl
// drops the relative entries before it requires anything.
func TestAttackDoctorLuaFromWorkingDirectory(t *testing.T) {
	requireProsody(t)
	d := newDoctor(context.Background(), Options{})
	in, ok := d.findProsody()
	if !ok {
		t.Fatal("Prosody's launcher not found")
	}
	cfg, err := filepath.Abs("testdata/prosody/clean.cfg.lua")
	if err != nil {
		t.Fatal(err)
	}
	cwd := t.TempDir()
	marker := filepath.Join(t.TempDir(), "ran")
	planted := `local f = io.open(` + luaQuote(marker) + `, "a"); f:write(...); f:write("\n"); f:close()` + "\n"
	for _, name := range []string{"prosody/loader.lua", "loader.lua", "prosody/loader/init.lua", "core/configmanager.lua"} {
		p := filepath.Join(cwd, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(planted), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(cwd)
	as, err := access.CurrentUser()
	if err != nil {
		t.Fatal(err)
	}
	if as.UID == 0 {
		if as, err = access.LookupUser("nobody"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := d.readProsody(in, cfg, as); err != nil {
		t.Logf("readProsody: %v", err)
	}
	if b, err := os.ReadFile(marker); err == nil {
		t.Errorf("doctor ran Lua files of its working directory: %q", b)
	}
}

// A host's [jwt] keys_file is one of the files the daemon reads at start,
// as token_secret_file is: doctor must tell when the daemon's user cannot
// read it (the daemon then exits, and every login is refused), and must
// take a "%d/" key set for a systemd credential, as it does a "%d/"
// secret, not for a mistake.
func TestAttackDoctorJWTKeysFile(t *testing.T) {
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(keys, []byte(fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":%q}]}`, base64.RawURLEncoding.EncodeToString(pub))), 0o600); err != nil {
		t.Fatal(err)
	}
	writeConfig := func(name, keysFile string) string {
		p := filepath.Join(dir, name)
		body := "[replay]\njournal = \"/var/lib/tokenauthd/replay.journal\"\n\n[hosts.\"example.org\"]\nisuser = \"seen\"\n[hosts.\"example.org\".jwt]\nkeys_file = " + strconv.Quote(keysFile) + "\n"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []doctorCase{
		{name: "key set the daemon cannot read", config: writeConfig("unreadable.toml", keys),
			setup: func(s *fakeSys) { s.files[keys] = fakeFile{mode: 0o600, disk: keys} }, exit: 1,
			want: []want{{sev: Error, key: "secret file " + keys, msg: "cannot read it"}}},
		{name: "key set a credential", config: writeConfig("credential.toml", "%d/secrets_keys.json"),
			want: []want{{sev: Note, msg: "systemd credentials"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, out, code := runCase(t, c)
			check(t, c, got, out, code)
		})
	}
}

// fakeSys is a machine made up for a test: its files (metadata, and
// contents in memory or in a file of testdata), users, groups, units,
// processors, clock and daemons. A directory on the way to a file it
// holds is there too, root's, mode 0755. Programs run for real (Prosody's
// configuration loader).
type fakeSys struct {
	files    map[string]fakeFile
	users    map[string]User
	groups   map[string]Group
	units    map[string][]UnitFile
	cpus     int
	clock    ClockStatus
	clockErr error
	// daemons answer on their sockets: nil closes the connection at once.
	daemons map[string]protocol.Handler
	// ranAs are the users programs were asked to run as.
	ranAs []User
}

type fakeFile struct {
	mode     fs.FileMode
	uid, gid int
	data     string // the contents, or
	disk     string // the file that holds them
}

// Accounts of the fake machine.
const (
	uidEjabberd, gidEjabberd     = 105, 108
	uidProsody, gidProsody       = 103, 106
	uidTokenauthd, gidTokenauthd = 998, 998
	gidClients                   = 999
	uidNobody, gidNobody         = 65534, 65534
)

// testdata is the absolute path of a file of testdata.
func testdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readRepo reads a file of the repository.
func readRepo(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// debianEjabberdUnit is Debian 12's ejabberd.service, the part doctor reads.
const debianEjabberdUnit = `[Unit]
Description=robust, scalable and extensible realtime platform (XMPP server + MQTT broker + SIP service)
After=epmd.service network.target

[Service]
Type=notify
User=ejabberd
Group=ejabberd
ExecStart=/bin/sh -c '/usr/sbin/ejabberdctl foreground'
PrivateDevices=true
PrivateTmp=true
ProtectHome=true
ProtectSystem=full

[Install]
WantedBy=multi-user.target
`

// debianProsodyUnit is Debian 12's prosody.service, the part doctor reads.
const debianProsodyUnit = `[Unit]
Description=Prosody XMPP Server

[Service]
Type=simple
ExecStart=/usr/bin/prosody -F
User=prosody
Group=prosody
# PrivateTmp=true

[Install]
WantedBy=multi-user.target
`

// cleanMachine is a machine set up as the package sets it up: tokenauthd
// installed, its daemon answering on the default socket, ejabberd and
// Prosody in tokenauthd-clients, the clock synchronised.
func cleanMachine(t *testing.T) *fakeSys {
	t.Helper()
	s := &fakeSys{
		files: map[string]fakeFile{
			"/usr/bin/tokenauthd": {mode: 0o755, data: "\x7fELF"},
			"/etc/tokenauthd":     {mode: fs.ModeDir | 0o755},
			// The daemon's (README: root:tokenauthd, 0640).
			"/etc/tokenauthd/config.toml":                           {mode: 0o600, uid: uidTokenauthd, disk: "testdata/tokenauthd/config.toml"},
			"/run/tokenauthd":                                       {mode: fs.ModeDir | 0o755, uid: uidTokenauthd, gid: gidTokenauthd},
			"/run/tokenauthd/tokenauthd.sock":                       {mode: fs.ModeSocket | 0o660, uid: uidTokenauthd, gid: gidClients},
			"/usr/share/tokenauthd/prosody/mod_auth_tokenauthd.lua": {mode: 0o644, data: "-- the module"},
		},
		users: map[string]User{
			"root":       {Name: "root", UID: 0, GID: 0, GIDs: []int{0}},
			"ejabberd":   {Name: "ejabberd", UID: uidEjabberd, GID: gidEjabberd, GIDs: []int{gidEjabberd, gidClients}},
			"prosody":    {Name: "prosody", UID: uidProsody, GID: gidProsody, GIDs: []int{gidProsody, gidClients}},
			"tokenauthd": {Name: "tokenauthd", UID: uidTokenauthd, GID: gidTokenauthd, GIDs: []int{gidTokenauthd}},
			"nobody":     {Name: "nobody", UID: uidNobody, GID: gidNobody, GIDs: []int{gidNobody}},
		},
		groups: map[string]Group{
			"root":               {Name: "root", GID: 0},
			"ejabberd":           {Name: "ejabberd", GID: gidEjabberd},
			"prosody":            {Name: "prosody", GID: gidProsody},
			"tokenauthd":         {Name: "tokenauthd", GID: gidTokenauthd},
			"tokenauthd-clients": {Name: "tokenauthd-clients", GID: gidClients},
			"nogroup":            {Name: "nogroup", GID: gidNobody},
		},
		units: map[string][]UnitFile{
			"ejabberd.service":   {{Path: "/lib/systemd/system/ejabberd.service", Text: debianEjabberdUnit}},
			"prosody.service":    {{Path: "/lib/systemd/system/prosody.service", Text: debianProsodyUnit}},
			"tokenauthd.service": {{Path: "/usr/lib/systemd/system/tokenauthd.service", Text: readRepo(t, "systemd/tokenauthd.service")}},
			"tokenauthd.socket":  {{Path: "/usr/lib/systemd/system/tokenauthd.socket", Text: readRepo(t, "systemd/tokenauthd.socket")}},
		},
		cpus:  2,
		clock: ClockStatus{Synchronised: true},
		daemons: map[string]protocol.Handler{
			"/run/tokenauthd/tokenauthd.sock": protocol.HandlerFunc(func(context.Context, protocol.Request) bool { return false }),
		},
	}
	return s
}

// withProsody adds the machine's real Prosody launcher, whose Lua and
// configuration loader doctor runs; the test is skipped (or fails, with
// TOKENAUTHD_E2E=1) without Debian's prosody.
func (s *fakeSys) withProsody(t *testing.T) {
	t.Helper()
	requireProsody(t)
	b, err := os.ReadFile("/usr/bin/prosodyctl")
	if err != nil {
		t.Fatal(err)
	}
	s.files["/usr/bin/prosodyctl"] = fakeFile{mode: 0o755, data: string(b)}
}

// requireProsody fails (TOKENAUTHD_E2E=1) or skips a test that needs
// Debian's prosody and its Lua.
func requireProsody(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/usr/bin/prosodyctl", "/usr/bin/lua5.4", "/usr/lib/prosody/core/configmanager.lua"} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("TOKENAUTHD_E2E") == "1" {
				t.Fatalf("required test peer %s is missing: %v (scripts/test installs it)", p, err)
			}
			t.Skipf("test peer %s missing; run scripts/test to install it", p)
		}
	}
}

// addFile puts a file of testdata on the fake machine at path, root's,
// mode 0644.
func (s *fakeSys) addFile(path, disk string) {
	s.files[path] = fakeFile{mode: 0o644, disk: disk}
}

func (s *fakeSys) ReadFile(path string, max int64) ([]byte, error) {
	f, ok := s.files[path]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	if f.mode.IsDir() || f.mode.Type() == fs.ModeSocket {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data := []byte(f.data)
	if f.disk != "" {
		var err error
		if data, err = os.ReadFile(f.disk); err != nil {
			return nil, err
		}
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return data, nil
}

func (s *fakeSys) Stat(path string) (FileInfo, error) {
	path = filepath.Clean(path)
	if f, ok := s.files[path]; ok {
		return FileInfo{Mode: f.mode, UID: f.uid, GID: f.gid}, nil
	}
	for p := range s.files {
		if path == "/" || strings.HasPrefix(p, path+"/") {
			return FileInfo{Mode: fs.ModeDir | 0o755}, nil
		}
	}
	return FileInfo{}, &fs.PathError{Op: "stat", Path: path, Err: fs.ErrNotExist}
}

func (s *fakeSys) LookupUser(name string) (User, error) {
	if u, ok := s.users[name]; ok {
		u.GIDs = slices.Clone(u.GIDs)
		return u, nil
	}
	return User{}, fmt.Errorf("user: unknown user %s", name)
}

func (s *fakeSys) LookupGroup(name string) (Group, error) {
	if g, ok := s.groups[name]; ok {
		return g, nil
	}
	return Group{}, fmt.Errorf("group: unknown group %s", name)
}

func (s *fakeSys) UserName(uid int) string {
	for _, n := range slices.Sorted(maps.Keys(s.users)) {
		if s.users[n].UID == uid {
			return n
		}
	}
	return strconv.Itoa(uid)
}

func (s *fakeSys) GroupName(gid int) string {
	for _, n := range slices.Sorted(maps.Keys(s.groups)) {
		if s.groups[n].GID == gid {
			return n
		}
	}
	return strconv.Itoa(gid)
}

func (s *fakeSys) UnitFiles(unit string) ([]UnitFile, error) { return s.units[unit], nil }

func (s *fakeSys) NumCPU() int { return s.cpus }

func (s *fakeSys) Clock() (ClockStatus, error) { return s.clock, s.clockErr }

func (s *fakeSys) DialUnix(ctx context.Context, path string) (net.Conn, error) {
	h, ok := s.daemons[path]
	if !ok {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: errors.New("connection refused")}
	}
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		if h != nil {
			srv := protocol.Server{Mode: protocol.Auto, Handler: h}
			srv.Serve(ctx, server, server)
		}
	}()
	return client, nil
}

// Run records whom it was asked to run the program as, and runs it for
// real: as nobody if the test runs as root, else as the test's user.
func (s *fakeSys) Run(ctx context.Context, prog string, args []string, as User, maxOut int) ([]byte, []byte, error) {
	s.ranAs = append(s.ranAs, as)
	real, err := access.CurrentUser()
	if err != nil {
		return nil, nil, err
	}
	if real.UID == 0 {
		if real, err = access.LookupUser("nobody"); err != nil {
			return nil, nil, err
		}
		real.GIDs = []int{real.GID}
	}
	return OS().Run(ctx, prog, args, real, maxOut)
}

// Lstat is Stat: the fake machine has symbolic links only where a test
// puts one (mode fs.ModeSymlink, the target in data).
func (s *fakeSys) Lstat(path string) (FileInfo, error) {
	if f, ok := s.files[filepath.Clean(path)]; ok && f.mode.Type() == fs.ModeSymlink {
		return FileInfo{Mode: f.mode, UID: f.uid, GID: f.gid}, nil
	}
	return s.Stat(path)
}

func (s *fakeSys) Readlink(path string) (string, error) {
	if f, ok := s.files[filepath.Clean(path)]; ok && f.mode.Type() == fs.ModeSymlink {
		return f.data, nil
	}
	return "", &fs.PathError{Op: "readlink", Path: path, Err: errors.New("invalid argument")}
}

// TestProsodyLoaderUser: Prosody's configuration is Lua, run with the
// whole of Lua by its loader. doctor runs it as Prosody's user, with the
// groups Prosody gets, never as root: as nobody when Prosody's user is
// root or unknown.
func TestProsodyLoaderUser(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *fakeSys)
		uid   int
		gids  []int
	}{
		{"Prosody's user", nil, uidProsody, []int{gidProsody, gidClients}},
		{"with the unit's groups", func(s *fakeSys) {
			dropGroup(s, "prosody")
			s.units["prosody.service"] = append(s.units["prosody.service"], UnitFile{
				Path: "/etc/systemd/system/prosody.service.d/tokenauthd.conf", Text: "[Service]\nSupplementaryGroups=tokenauthd-clients\n"})
		}, uidProsody, []int{gidProsody, gidClients}},
		{"Prosody run as root", func(s *fakeSys) {
			s.units["prosody.service"] = append(s.units["prosody.service"], UnitFile{
				Path: "/etc/systemd/system/prosody.service.d/root.conf", Text: "[Service]\nUser=root\n"})
		}, uidNobody, []int{gidNobody}},
		{"no user prosody", func(s *fakeSys) { delete(s.users, "prosody") }, uidNobody, []int{gidNobody}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s *fakeSys
			runCase(t, doctorCase{config: cleanConfig, prosody: "testdata/prosody/clean.cfg.lua", setup: func(fs *fakeSys) {
				s = fs
				if tt.setup != nil {
					tt.setup(fs)
				}
			}})
			if len(s.ranAs) != 1 {
				t.Fatalf("ran %d programs, want 1", len(s.ranAs))
			}
			if as := s.ranAs[0]; as.UID != tt.uid || !slices.Equal(as.GIDs, tt.gids) {
				t.Errorf("loaded as %+v, want uid %d, groups %v", as, tt.uid, tt.gids)
			}
		})
	}
	// With no nobody either, the configuration is not loaded at all.
	got, _, code := runCase(t, doctorCase{config: cleanConfig, prosody: "testdata/prosody/clean.cfg.lua", setup: func(s *fakeSys) {
		delete(s.users, "prosody")
		delete(s.users, "nobody")
	}})
	if code != 1 || !slices.ContainsFunc(got, func(f Finding) bool { return strings.Contains(f.Message, "no user nobody") }) {
		t.Errorf("without prosody and nobody: exit %d, %v", code, got)
	}
}

// TestRunAs: the loader's process, on this machine, runs as its user with
// that user's groups alone, no_new_privs set, no environment, from /, in
// a PID namespace of its own (nothing it starts outlives it); root is
// refused.
func TestRunAs(t *testing.T) {
	for _, tt := range []struct {
		as   User
		self int
		err  bool
		cred bool
	}{
		{User{Name: "prosody", UID: 103, GID: 106, GIDs: []int{106, 999}}, 0, false, true},
		{User{Name: "prosody", UID: 103, GID: 106}, 103, false, false},
		{User{Name: "prosody", UID: 103, GID: 106}, 1000, true, false},
		{User{Name: "root", UID: 0, GID: 0}, 0, true, false},
		{User{Name: "ghost", UID: -1, GID: -1}, 0, true, false},
	} {
		cred, err := credential(tt.as, tt.self)
		if (err != nil) != tt.err || (cred != nil) != tt.cred {
			t.Errorf("credential(%s, %d) = %+v, %v", tt.as.Name, tt.self, cred, err)
		}
		if cred != nil && (cred.Uid != uint32(tt.as.UID) || cred.Gid != uint32(tt.as.GID) || len(cred.Groups) != len(tt.as.GIDs)) {
			t.Errorf("credential(%s) = %+v", tt.as.Name, cred)
		}
	}
	if os.Getuid() != 0 {
		t.Skip("switching users needs root")
	}
	nobody, err := access.LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	nobody.GIDs = []int{nobody.GID}
	// In a PID namespace of its own, the shell is its first process.
	script := `grep -E '^(Uid|Gid|Groups|NoNewPrivs):' /proc/self/status; echo "cwd=$(pwd) pid=$$"; env; echo end`
	out, _, err := OS().Run(context.Background(), "/bin/sh", []string{"-c", script}, nobody, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.Itoa(nobody.UID)
	want := fmt.Sprintf("Uid:\t%s\t%s\t%s\t%s\nGid:\t%d\t%d\t%d\t%d\nGroups:\t%d \nNoNewPrivs:\t1\ncwd=/ pid=1\n", id, id, id, id,
		nobody.GID, nobody.GID, nobody.GID, nobody.GID, nobody.GID)
	// The shell sets PWD, SHLVL and _ itself.
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, "PWD=") && !strings.HasPrefix(l, "SHLVL=") && !strings.HasPrefix(l, "_=") && !strings.HasPrefix(l, "OLDPWD=") {
			lines = append(lines, l)
		}
	}
	if got := strings.Join(lines, "\n"); got != want+"end\n" {
		t.Errorf("the loader's process:\n%s\nwant:\n%send", got, want)
	}
	if _, _, err := OS().Run(context.Background(), "/bin/true", nil, User{Name: "root", UID: 0, GID: 0}, 10); err == nil {
		t.Error("ran a program as root")
	}
}

// TestCheckWritersRelative: a configuration named by a relative path
// (-prosody prosody.cfg.lua) is checked where it is, from the working
// directory.
func TestCheckWritersRelative(t *testing.T) {
	s := cleanMachine(t)
	dir := t.TempDir()
	t.Chdir(dir)
	s.files[filepath.Join(dir, "prosody.cfg.lua")] = fakeFile{mode: 0o644, uid: uidNobody}
	d := newDoctor(context.Background(), Options{System: s})
	d.checkWriters(prosodyTrust, "prosody.cfg.lua", loaded{})
	if len(d.findings) != 1 || d.findings[0].Severity != Error || d.findings[0].File != filepath.Join(dir, "prosody.cfg.lua") {
		t.Errorf("findings: %+v", d.findings)
	}
}
