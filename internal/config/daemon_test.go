package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadConfigDaemon: the [daemon], [connect] and [replay] store keys.
func TestLoadConfigDaemon(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	os.Mkdir(creds, 0o700)
	os.WriteFile(filepath.Join(creds, "secret"), []byte(leakySecret+"\n"), 0o600)
	os.WriteFile(filepath.Join(creds, "redis-pw"), []byte("redispw\n"), 0o600)
	host := "[hosts.\"example.org\"]\ntoken_secret = \"x\"\notp_seed = \"JBSWY3DPEHPK3PXP\"\n"
	tests := []struct {
		name    string
		text    string
		check   func(*Config) bool // for valid ones
		wantErr []string           // all in the error
	}{
		// Defaults: memory, no journal, the default socket, a 2 s relay bound.
		{"defaults", host, func(c *Config) bool {
			return c.Store == "memory" && c.Journal == "" && c.Socket == DefaultSocket && c.RelayTimeout == 2*time.Second &&
				c.MaxConnections == 1024 && c.RequestTimeout == 5*time.Second
		}, nil},
		// Connection limits.
		{"limits", "[daemon]\nmax_connections = 10\nrequest_timeout_ms = 250\n" + host, func(c *Config) bool {
			return c.MaxConnections == 10 && c.RequestTimeout == 250*time.Millisecond
		}, nil},
		{"no connections", "[daemon]\nmax_connections = 0\n" + host, nil, []string{"daemon.max_connections", "not 0"}},
		{"too many connections", "[daemon]\nmax_connections = 1000001\n" + host, nil, []string{"daemon.max_connections"}},
		{"request timeout", "[daemon]\nrequest_timeout_ms = 5\n" + host, nil, []string{"daemon.request_timeout_ms", "not 5"}},
		{"long request timeout", "[daemon]\nrequest_timeout_ms = 60001\n" + host, nil, []string{"daemon.request_timeout_ms"}},
		// Socket, group and bound.
		{"daemon", "[daemon]\nsocket = \"/run/x/y.sock\"\nsocket_group = \"xmpp\"\n[connect]\ntimeout_ms = 1500\n" + host, func(c *Config) bool {
			return c.Socket == "/run/x/y.sock" && c.SocketGroup == "xmpp" && c.RelayTimeout == 1500*time.Millisecond
		}, nil},
		// A journal, fsynced on every record.
		{"journal", "[replay]\njournal = \"/var/lib/tokenauthd/replay.journal\"\njournal_sync = \"always\"\n" + host, func(c *Config) bool {
			return c.Journal == "/var/lib/tokenauthd/replay.journal" && c.JournalSyncEvery
		}, nil},
		// Redis by URL, its password in a credential file.
		{"redis url", "[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:6379/2\"\nredis_password_file = \"%d/redis-pw\"\nredis_prefix = \"site1:\"\nredis_timeout_ms = 250\n" + host, func(c *Config) bool {
			return c.Store == "redis" && c.Redis.URL != "" && c.Redis.Password == "redispw" && c.Redis.Prefix == "site1:" && c.Redis.Timeout == 250*time.Millisecond
		}, nil},
		// Redis by Sentinels.
		{"redis sentinel", "[replay]\nstore = \"redis\"\nredis_addrs = [\"10.0.0.1:26379\", \"10.0.0.2:26379\"]\nredis_master = \"mymaster\"\n" + host, func(c *Config) bool {
			return len(c.Redis.Addrs) == 2 && c.Redis.Master == "mymaster" && c.Redis.Prefix == "tokenauthd:" && c.Redis.Timeout == 500*time.Millisecond
		}, nil},
		// A secret from $CREDENTIALS_DIRECTORY.
		{"credential secret", "[hosts.\"example.org\"]\ntoken_secret_file = \"%d/secret\"\notp_seed = \"JBSWY3DPEHPK3PXP\"\n", func(c *Config) bool {
			return string(c.Hosts["example.org"].TokenSecrets[0]) == leakySecret
		}, nil},
		{"relative socket", "[daemon]\nsocket = \"x.sock\"\n" + host, nil, []string{"daemon.socket", "absolute"}},
		{"long socket", "[daemon]\nsocket = \"/" + strings.Repeat("x", 120) + "\"\n" + host, nil, []string{"daemon.socket"}},
		{"relay bound", "[connect]\ntimeout_ms = 5\n" + host, nil, []string{"connect.timeout_ms"}},
		{"unknown store", "[replay]\nstore = \"etcd\"\n" + host, nil, []string{"replay.store", "etcd"}},
		{"relative journal", "[replay]\njournal = \"replay.journal\"\n" + host, nil, []string{"replay.journal"}},
		{"journal sync", "[replay]\njournal_sync = \"sometimes\"\n" + host, nil, []string{"journal_sync"}},
		{"redis without address", "[replay]\nstore = \"redis\"\n" + host, nil, []string{"redis_url or redis_addrs"}},
		{"redis both", "[replay]\nstore = \"redis\"\nredis_url = \"redis://a:1\"\nredis_addrs = [\"a:1\"]\n" + host, nil, []string{"not both"}},
		{"redis with journal", "[replay]\nstore = \"redis\"\nredis_url = \"redis://a:1\"\njournal = \"/var/lib/x\"\n" + host, nil, []string{"replay.journal"}},
		{"redis address on memory", "[replay]\nredis_url = \"redis://a:1\"\n" + host, nil, []string{`store = "redis"`}},
		{"redis bad addr", "[replay]\nstore = \"redis\"\nredis_addrs = [\"nohost\"]\n" + host, nil, []string{"redis_addrs"}},
		// A bad URL is reported without quoting it: it may hold a password.
		{"redis timeout", "[replay]\nstore = \"redis\"\nredis_url = \"redis://a:1\"\nredis_timeout_ms = 0\n" + host, nil, []string{"redis_timeout_ms"}},
		{"redis empty prefix", "[replay]\nstore = \"redis\"\nredis_url = \"redis://a:1\"\nredis_prefix = \"\"\n" + host, nil, []string{"redis_prefix"}},
		{"unknown daemon key", "[daemon]\nsockt = \"/x\"\n" + host, nil, []string{"unknown key", "daemon.sockt"}},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".toml")
		os.WriteFile(path, []byte(tt.text), 0o600)
		c, err := Load(path, Options{Credentials: creds})
		if tt.wantErr == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			} else if !tt.check(c) {
				t.Errorf("%s: loaded %+v", tt.name, *c)
			}
			continue
		}
		if !errorHas(t, tt.name, err, tt.wantErr) {
			continue
		}
		if strings.Contains(err.Error(), leakySecret) {
			t.Errorf("%s: error %q holds the secret", tt.name, err)
		}
	}
}

// TestCredentialPath: "%d/" is the credentials directory, systemd's
// ($CREDENTIALS_DIRECTORY) or, outside the service, the unit's
// LoadCredential=ID:DIR; without either it is an error that says why.
func TestCredentialPath(t *testing.T) {
	for _, tt := range []struct{ creds, path, want, err string }{
		{"", "%d/secret", "", "LoadCredential"},
		{"", "/etc/x", "/etc/x", ""},
		{"/run/credentials/tokenauthd.service", "%d/secrets_a.example", "/run/credentials/tokenauthd.service/secrets_a.example", ""},
		{"secrets:/etc/tokenauthd/secrets", "%d/secrets_a.example", "/etc/tokenauthd/secrets/a.example", ""},
		{"secrets:/etc/tokenauthd/secrets", "%d/other_a.example", "", "no credential of LoadCredential=secrets:"},
		{"secrets:/etc/tokenauthd/secrets", "%d/secrets_../x", "", "no credential"},
		{"secrets:/etc/tokenauthd/secrets", "/etc/x", "/etc/x", ""},
		{"/run/credentials/x", "%d/../../../etc/shadow", "", "leaves the credentials directory"},
		{"/run/credentials/x", "%d/a/../../b", "", "leaves the credentials directory"},
	} {
		p, err := credentialPath(tt.path, Options{Credentials: tt.creds})
		if p != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("credentialPath(%q, %q) = %q, %v; want %q, %q", tt.path, tt.creds, p, err, tt.want, tt.err)
		}
	}
}

// TestRelaySettings: the relay reads only its two keys, ignores the rest
// (even keys it does not know: the daemon's config is checked by the
// daemon), and falls back to the defaults when the default file is
// missing or unreadable, but not when it was named.
func TestRelaySettings(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.toml")
	os.WriteFile(p, []byte("future_key = 1\n[daemon]\nsocket = \"/run/a.sock\"\n[connect]\ntimeout_ms = 700\n[hosts.\"x\"]\ntoken_secret = \"s\"\n"), 0o600)
	rs, err := LoadRelay(p, true)
	if err != nil || rs.Socket != "/run/a.sock" || rs.Timeout != 700*time.Millisecond {
		t.Errorf("loadRelaySettings = %+v, %v", rs, err)
	}
	missing := filepath.Join(dir, "none.toml")
	if rs, err := LoadRelay(missing, false); err != nil || rs.Socket != DefaultSocket || rs.Timeout != DefaultRelayTimeout {
		t.Errorf("missing default file: %+v, %v; want the defaults", rs, err)
	}
	if _, err := LoadRelay(missing, true); err == nil {
		t.Error("missing named file: no error")
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[connect]\ntimeout_ms = 1\n"), 0o600)
	if _, err := LoadRelay(bad, false); err == nil {
		t.Error("bad timeout_ms: no error")
	}
}
