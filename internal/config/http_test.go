package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate and its key into dir.
func writeCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tokenauthd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}

// httpCase is a configuration of the [http] tests: valid (check) or
// refused (wantErr, all in the error).
type httpCase struct {
	name    string
	text    string
	check   func(*HTTP) bool
	wantErr []string
}

// httpFiles are the files the [http] tests' configurations name, and
// their pieces of configuration.
type httpFiles struct {
	dir, appKey, appKey2, sameKey, shortKey, spaceKey, openKey, cert, key string
	host, creds, tcp                                                      string
}

func (f httpFiles) app(file string, hosts ...string) string {
	return "[http.apps.\"webapp\"]\nkey_file = \"" + file + "\"\nhosts = [\"" + strings.Join(hosts, "\", \"") + "\"]\n"
}

func newHTTPFiles(t *testing.T) httpFiles {
	t.Helper()
	f := httpFiles{dir: t.TempDir()}
	dir := f.dir
	f.appKey = filepath.Join(dir, "app.key")
	os.WriteFile(f.appKey, []byte(leakySecret+"-0123456789\nsecond line ignored\n"), 0o600)
	f.appKey2 = filepath.Join(dir, "app2.key")
	os.WriteFile(f.appKey2, []byte("another-key-0123456789\n"), 0o600)
	f.sameKey = filepath.Join(dir, "same.key")
	os.WriteFile(f.sameKey, []byte(leakySecret+"-0123456789\n"), 0o600)
	f.shortKey = filepath.Join(dir, "short.key")
	os.WriteFile(f.shortKey, []byte(leakySecret[:8]+"\n"), 0o600)
	f.spaceKey = filepath.Join(dir, "space.key")
	os.WriteFile(f.spaceKey, []byte(leakySecret+" with a space\n"), 0o600)
	f.openKey = filepath.Join(dir, "open.key")
	os.WriteFile(f.openKey, []byte(leakySecret+"-0123456789\n"), 0o600)
	os.Chmod(f.openKey, 0o666)
	f.cert, f.key = writeCert(t, dir)
	f.host = "[hosts.\"example.org\"]\ntoken_secret = \"x\"\notp_seed = \"JBSWY3DPEHPK3PXP\"\n" +
		"[hosts.\"jwt.example\".jwt]\nkeys_file = \"" + writeJWKS(t, dir) + "\"\n"
	f.creds = "[http.credentials]\nhost = \"example.org\"\ntrusted_proxies = [\"127.0.0.2\", \"::1/128\"]\n"
	f.tcp = "[http]\nlisten = \"127.0.0.1:5290\"\n"
	return f
}

// runHTTPCases loads each case's configuration and checks the outcome.
func runHTTPCases(t *testing.T, dir string, tests []httpCase) {
	t.Helper()
	for _, tt := range tests {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".toml")
		os.WriteFile(path, []byte(tt.text), 0o600)
		c, err := Load(path, Options{})
		if tt.wantErr == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			} else if !tt.check(c.HTTP) {
				t.Errorf("%s: loaded %+v", tt.name, c.HTTP)
			}
			continue
		}
		if !errorHas(t, tt.name, err, tt.wantErr) {
			continue
		}
		if strings.Contains(err.Error(), leakySecret) {
			t.Errorf("%s: error %q holds the key", tt.name, err)
		}
	}
}

// TestLoadConfigHTTP: the [http] listener, limit and TLS, each refusal
// naming its key and never quoting a key.
func TestLoadConfigHTTP(t *testing.T) {
	f := newHTTPFiles(t)
	runHTTPCases(t, f.dir, []httpCase{
		// Off by default.
		{"off", f.host, func(h *HTTP) bool { return h == nil }, nil},
		// An application on loopback: its key is the file's first line.
		{"app", f.tcp + f.app(f.appKey, "example.org") + f.host, func(h *HTTP) bool {
			a := h.Apps["webapp"]
			return h.Listen == "127.0.0.1:5290" && h.PerUserPerMinute == 60 && string(a.Key) == leakySecret+"-0123456789" &&
				len(a.Hosts) == 1 && h.Credentials == nil && h.TLSCert == nil
		}, nil},
		// The credentials endpoint; a bare address is a /32 (or /128).
		{"credentials", f.tcp + "per_user_per_minute = 5\n" + f.creds + f.host, func(h *HTTP) bool {
			c := h.Credentials
			return h.PerUserPerMinute == 5 && c.Host == "example.org" && c.UserHeader == "X-Forwarded-User" &&
				len(c.TrustedProxies) == 2 && c.TrustedProxies[0] == netip.MustParsePrefix("127.0.0.2/32")
		}, nil},
		// A Unix socket: no trusted proxies, a group.
		{"unix", "[http]\nlisten = \"unix:/run/tokenauthd/http.sock\"\nsocket_group = \"www-data\"\n[http.credentials]\nhost = \"example.org\"\nuser_header = \"X-Remote-User\"\n" + f.host, func(h *HTTP) bool {
			return h.Socket == "/run/tokenauthd/http.sock" && h.SocketGroup == "www-data" && h.Listen == "" &&
				h.Credentials.UserHeader == "X-Remote-User"
		}, nil},
		// A public address with TLS.
		{"tls", "[http]\nlisten = \"0.0.0.0:5291\"\ntls_cert_file = \"" + f.cert + "\"\ntls_key_file = \"" + f.key + "\"\n" + f.app(f.appKey, "example.org") + f.host, func(h *HTTP) bool {
			return h.TLSCert != nil && h.TLSKey != nil
		}, nil},
		// A public address without TLS is refused, an empty host (every
		// address) too, and a host name, which may resolve to anything.
		{"public without tls", "[http]\nlisten = \"192.0.2.1:5290\"\n" + f.app(f.appKey, "example.org") + f.host, nil, []string{"http.listen", "not a loopback address", "tls_cert_file"}},
		{"every address without tls", "[http]\nlisten = \":5290\"\n" + f.app(f.appKey, "example.org") + f.host, nil, []string{"http.listen", "not a loopback"}},
		{"host name", "[http]\nlisten = \"localhost:5290\"\n" + f.app(f.appKey, "example.org") + f.host, nil, []string{"http.listen", "IP address"}},
		{"no port", "[http]\nlisten = \"127.0.0.1\"\n" + f.app(f.appKey, "example.org") + f.host, nil, []string{"http.listen"}},
		{"cert without key", "[http]\nlisten = \"0.0.0.0:5291\"\ntls_cert_file = \"" + f.cert + "\"\n" + f.app(f.appKey, "example.org") + f.host, nil, []string{"go together"}},
		{"key for cert", "[http]\nlisten = \"0.0.0.0:5291\"\ntls_cert_file = \"" + f.key + "\"\ntls_key_file = \"" + f.key + "\"\n" + f.app(f.appKey, "example.org") + f.host, nil, []string{"not a certificate and its key"}},
		{"tls on unix", "[http]\nlisten = \"unix:/run/x.sock\"\ntls_cert_file = \"" + f.cert + "\"\ntls_key_file = \"" + f.key + "\"\n" + f.app(f.appKey, "example.org") + f.host, nil, []string{"Unix socket"}},
		{"relative unix", "[http]\nlisten = \"unix:x.sock\"\n" + f.app(f.appKey, "example.org") + f.host, nil, []string{"http.listen", "absolute"}},
		{"group on tcp", f.tcp + "socket_group = \"www-data\"\n" + f.app(f.appKey, "example.org") + f.host, nil, []string{"http.socket_group"}},
		{"nothing to serve", f.tcp + f.host, nil, []string{"nothing to serve"}},
		{"apps without listen", f.app(f.appKey, "example.org") + f.host, nil, []string{"http.listen is empty"}},
		{"limit", f.tcp + "per_user_per_minute = 0\n" + f.app(f.appKey, "example.org") + f.host, nil, []string{"http.per_user_per_minute", "not 0"}},
		{"limit high", f.tcp + "per_user_per_minute = 10001\n" + f.app(f.appKey, "example.org") + f.host, nil, []string{"http.per_user_per_minute"}},
	})
}

// TestLoadConfigHTTPApps: [http.apps."NAME"] and [http.credentials].
func TestLoadConfigHTTPApps(t *testing.T) {
	f := newHTTPFiles(t)
	runHTTPCases(t, f.dir, []httpCase{
		// Keys: held to the rules of secret files, long enough, one line
		// of header characters, one per application.
		{"open key", f.tcp + f.app(f.openKey, "example.org") + f.host, nil, []string{`http.apps."webapp".key_file`, "writable by others"}},
		{"missing key file", f.tcp + f.app(filepath.Join(f.dir, "none"), "example.org") + f.host, nil, []string{`http.apps."webapp".key_file`}},
		{"no key file", f.tcp + "[http.apps.\"webapp\"]\nhosts = [\"example.org\"]\n" + f.host, nil, []string{`http.apps."webapp".key_file is missing`}},
		{"short key", f.tcp + f.app(f.shortKey, "example.org") + f.host, nil, []string{"key_file", "16 to 1024 bytes, not 8"}},
		{"space in key", f.tcp + f.app(f.spaceKey, "example.org") + f.host, nil, []string{"key_file", "space"}},
		{"same key", f.tcp + f.app(f.appKey, "example.org") + "[http.apps.\"other\"]\nkey_file = \"" + f.sameKey + "\"\nhosts = [\"example.org\"]\n" + f.host, nil, []string{"its own"}},
		{"two apps", f.tcp + f.app(f.appKey, "example.org") + "[http.apps.\"other\"]\nkey_file = \"" + f.appKey2 + "\"\nhosts = [\"example.org\"]\n" + f.host, func(h *HTTP) bool { return len(h.Apps) == 2 }, nil},
		{"bad app name", f.tcp + "[http.apps.\"a b\"]\nkey_file = \"" + f.appKey + "\"\nhosts = [\"example.org\"]\n" + f.host, nil, []string{`http.apps."a b"`}},
		// Hosts must be configured and mint tokens.
		{"no hosts", f.tcp + "[http.apps.\"webapp\"]\nkey_file = \"" + f.appKey + "\"\n" + f.host, nil, []string{`webapp".hosts`}},
		{"unknown host", f.tcp + f.app(f.appKey, "other.org") + f.host, nil, []string{`webapp".hosts`, "other.org"}},
		{"jwt host", f.tcp + f.app(f.appKey, "jwt.example") + f.host, nil, []string{`webapp".hosts`, "JWTs only"}},
		{"credentials host", f.tcp + "[http.credentials]\nhost = \"jwt.example\"\ntrusted_proxies = [\"127.0.0.2\"]\n" + f.host, nil, []string{"http.credentials.host", "JWTs only"}},
		{"credentials no host", f.tcp + "[http.credentials]\ntrusted_proxies = [\"127.0.0.2\"]\n" + f.host, nil, []string{"http.credentials.host is missing"}},
		{"no proxies", f.tcp + "[http.credentials]\nhost = \"example.org\"\n" + f.host, nil, []string{"trusted_proxies is empty"}},
		{"proxies on unix", "[http]\nlisten = \"unix:/run/x.sock\"\n" + f.creds + f.host, nil, []string{"trusted_proxies", "Unix socket"}},
		{"bad proxy", f.tcp + "[http.credentials]\nhost = \"example.org\"\ntrusted_proxies = [\"proxy.example\"]\n" + f.host, nil, []string{"trusted_proxies", "proxy.example"}},
		{"unmasked proxy", f.tcp + "[http.credentials]\nhost = \"example.org\"\ntrusted_proxies = [\"10.0.0.1/8\"]\n" + f.host, nil, []string{"trusted_proxies", "past its prefix"}},
		{"bad header", f.tcp + "[http.credentials]\nhost = \"example.org\"\nuser_header = \"X User\"\ntrusted_proxies = [\"127.0.0.2\"]\n" + f.host, nil, []string{"user_header"}},
		{"unknown key", f.tcp + "[http.credentials]\nhost = \"example.org\"\nheader = \"X\"\n" + f.host, nil, []string{"unknown key", "http.credentials.header"}},
	})
}

// TestHTTPKeyFilesListed: the applications' key files and the TLS key are
// secret files: listed in Files (check-config and doctor read them) and
// warned about when every user may read them.
func TestHTTPKeyFilesListed(t *testing.T) {
	dir := t.TempDir()
	appKey := filepath.Join(dir, "app.key")
	os.WriteFile(appKey, []byte("0123456789abcdef0123\n"), 0o644)
	os.Chmod(appKey, 0o644)
	p := filepath.Join(dir, "c.toml")
	os.WriteFile(p, []byte("[http]\nlisten = \"127.0.0.1:5290\"\n[http.apps.\"webapp\"]\nkey_file = \""+appKey+
		"\"\nhosts = [\"example.org\"]\n[hosts.\"example.org\"]\ntoken_secret = \"x\"\notp_seed = \"JBSWY3DPEHPK3PXP\"\n"), 0o600)
	c, err := Load(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(c.Files, " "), appKey) {
		t.Errorf("Files = %q, want %s among them", c.Files, appKey)
	}
	if !strings.Contains(strings.Join(c.Warnings(), "\n"), appKey+": readable by every user") {
		t.Errorf("Warnings = %q, want one for %s", c.Warnings(), appKey)
	}
}

// writeJWKS writes a JWK Set of one Ed25519 public key (RFC 8037's
// example) into dir: config reads it unchecked, internal/setup checks it.
func writeJWKS(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "jwks.json")
	set := `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`
	if err := os.WriteFile(p, []byte(set), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
