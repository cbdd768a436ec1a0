package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// httpSection is the file's [http] section: serve's HTTP API that mints
// tokens for applications and for a web client behind a login proxy.
type httpSection struct {
	Listen           string                 `toml:"listen"`
	SocketGroup      string                 `toml:"socket_group"`
	TLSCertFile      string                 `toml:"tls_cert_file"`
	TLSKeyFile       string                 `toml:"tls_key_file"`
	PerUserPerMinute int                    `toml:"per_user_per_minute"`
	Apps             map[string]httpAppFile `toml:"apps"`
	Credentials      *httpCredentialsFile   `toml:"credentials"`
}

// httpAppFile is one [http.apps."NAME"] section.
type httpAppFile struct {
	KeyFile string   `toml:"key_file"`
	Hosts   []string `toml:"hosts"`
}

// httpCredentialsFile is the [http.credentials] section.
type httpCredentialsFile struct {
	Host           string   `toml:"host"`
	UserHeader     string   `toml:"user_header"`
	TrustedProxies []string `toml:"trusted_proxies"`
}

// HTTP is the validated [http] section. Config.HTTP is nil when
// [http] listen is empty: no HTTP API.
type HTTP struct {
	// Listen is a TCP address (host:port, the host an IP literal or empty
	// for every address); empty when Socket is set.
	Listen string
	// Socket is the Unix socket to listen on ("unix:PATH"), SocketGroup
	// the group it is given, if any.
	Socket      string
	SocketGroup string
	// TLSCert and TLSKey are the PEM certificate chain and key to serve
	// TLS with; nil for plain HTTP (loopback or Unix socket only).
	TLSCert, TLSKey []byte
	// PerUserPerMinute bounds the tokens minted for one JID in a minute,
	// both endpoints together.
	PerUserPerMinute int
	// Apps are the applications that may ask POST /v1/tokens, by name.
	Apps map[string]HTTPApp
	// Credentials, if not nil, enables GET /v1/credentials.
	Credentials *HTTPCredentials
}

// HTTPApp is an application of [http.apps."NAME"].
type HTTPApp struct {
	// Key is its bearer key: the first line of its key_file.
	Key []byte
	// Hosts are the XMPP hosts it may ask tokens for.
	Hosts []string
}

// HTTPCredentials is the [http.credentials] section.
type HTTPCredentials struct {
	Host           string
	UserHeader     string // canonical form
	TrustedProxies []netip.Prefix
}

// Bounds and defaults of the [http] section.
const (
	DefaultPerUserPerMinute = 60
	maxPerUserPerMinute     = 10_000
	maxHTTPApps             = 256
	minHTTPKey              = 16   // bytes: a guessable key is no key
	maxHTTPKey              = 1024 // bytes: a header line, not a document
	maxHTTPAppHosts         = 1024
	maxTrustedProxies       = 256
	maxCertFile             = 1 << 20
	DefaultUserHeader       = "X-Forwarded-User"
)

var (
	appName     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	headerToken = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
)

// buildHTTP validates the [http] section into c.HTTP, once c.Hosts are
// built (an app's hosts must be hosts that mint tokens).
func buildHTTP(c *Config, hs *httpSection, o Options) error {
	if hs.Listen == "" {
		if len(hs.Apps) > 0 || hs.Credentials != nil || hs.TLSCertFile != "" || hs.TLSKeyFile != "" || hs.SocketGroup != "" {
			return errors.New("http: apps, credentials or TLS are set but http.listen is empty: set listen, or remove them")
		}
		return nil
	}
	h := &HTTP{PerUserPerMinute: hs.PerUserPerMinute, Apps: map[string]HTTPApp{}}
	if err := buildHTTPListen(h, hs, o); err != nil {
		return err
	}
	if n := h.PerUserPerMinute; n < 1 || n > maxPerUserPerMinute {
		return fmt.Errorf("http.per_user_per_minute: must be 1 to %d, not %d", maxPerUserPerMinute, n)
	}
	if len(hs.Apps) == 0 && hs.Credentials == nil {
		return errors.New("http: listen is set but there is neither an [http.apps.\"NAME\"] nor an [http.credentials] section: nothing to serve")
	}
	if len(hs.Apps) > maxHTTPApps {
		return fmt.Errorf("http.apps: at most %d applications", maxHTTPApps)
	}
	for _, name := range slices.Sorted(maps.Keys(hs.Apps)) {
		app, err := buildHTTPApp(c, name, hs.Apps[name], o)
		if err != nil {
			return err
		}
		for other, a := range h.Apps {
			if bytes.Equal(a.Key, app.Key) {
				return fmt.Errorf("http.apps.%q: its key is also %q's: give each application its own", name, other)
			}
		}
		h.Apps[name] = app
	}
	if hs.Credentials != nil {
		cr, err := buildHTTPCredentials(c, hs.Credentials, h.Socket != "")
		if err != nil {
			return err
		}
		h.Credentials = cr
	}
	c.HTTP = h
	return nil
}

// buildHTTPListen validates listen, socket_group and the TLS files.
func buildHTTPListen(h *HTTP, hs *httpSection, o Options) error {
	if path, ok := strings.CutPrefix(hs.Listen, "unix:"); ok {
		p, err := SocketPath(path)
		if err != nil {
			return fmt.Errorf("http.listen: %w", err)
		}
		if hs.TLSCertFile != "" || hs.TLSKeyFile != "" {
			return errors.New("http: tls_cert_file and tls_key_file are for a TCP listen, not a Unix socket")
		}
		h.Socket, h.SocketGroup = p, hs.SocketGroup
		return nil
	}
	if hs.SocketGroup != "" {
		return errors.New("http.socket_group: only for listen = \"unix:PATH\"")
	}
	host, port, err := net.SplitHostPort(hs.Listen)
	if err != nil || port == "" {
		return fmt.Errorf("http.listen: %q is neither host:port nor unix:PATH", hs.Listen)
	}
	loopback := false
	if host != "" {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("http.listen: %q: the host must be an IP address (a name may resolve to a public one)", hs.Listen)
		}
		loopback = ip.IsLoopback()
	}
	h.Listen = hs.Listen
	if (hs.TLSCertFile == "") != (hs.TLSKeyFile == "") {
		return errors.New("http: tls_cert_file and tls_key_file go together: set both or neither")
	}
	if hs.TLSCertFile == "" {
		if !loopback {
			return fmt.Errorf("http.listen: %q is not a loopback address: tokens would cross the network in clear; set tls_cert_file and tls_key_file, or listen on loopback or unix:PATH", hs.Listen)
		}
		return nil
	}
	certPath, err := credentialPath(hs.TLSCertFile, o)
	if err != nil {
		return fmt.Errorf("http.tls_cert_file: %w", err)
	}
	if h.TLSCert, _, err = readTrustedFile(certPath, maxCertFile, o.owner()); err != nil {
		return fmt.Errorf("http.tls_cert_file: %s: %w", certPath, err)
	}
	keyPath, err := credentialPath(hs.TLSKeyFile, o)
	if err != nil {
		return fmt.Errorf("http.tls_key_file: %w", err)
	}
	if h.TLSKey, err = readSecretFile(keyPath, o.owner()); err != nil {
		return fmt.Errorf("http.tls_key_file: %w", err)
	}
	if _, err := tls.X509KeyPair(h.TLSCert, h.TLSKey); err != nil {
		// Its error never quotes the key.
		return fmt.Errorf("http: tls_cert_file and tls_key_file are not a certificate and its key: %w", err)
	}
	return nil
}

// buildHTTPApp validates one [http.apps."NAME"] section and reads its key.
func buildHTTPApp(c *Config, name string, a httpAppFile, o Options) (HTTPApp, error) {
	key := fmt.Sprintf("http.apps.%q", name)
	if !appName.MatchString(name) {
		return HTTPApp{}, fmt.Errorf("%s: a name is 1 to 64 letters, digits, '.', '_' or '-'", key)
	}
	if a.KeyFile == "" {
		return HTTPApp{}, fmt.Errorf("%s.key_file is missing", key)
	}
	p, err := credentialPath(a.KeyFile, o)
	if err != nil {
		return HTTPApp{}, fmt.Errorf("%s.key_file: %w", key, err)
	}
	b, err := readSecretFile(p, o.owner())
	if err != nil {
		return HTTPApp{}, fmt.Errorf("%s.key_file: %w", key, err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) < minHTTPKey || len(line) > maxHTTPKey {
		return HTTPApp{}, fmt.Errorf("%s.key_file: %s: the key (its first line) must be %d to %d bytes, not %d: make one with: head -c 32 /dev/urandom | base64", key, p, minHTTPKey, maxHTTPKey, len(line))
	}
	for _, ch := range line {
		if ch <= ' ' || ch >= 0x7f {
			return HTTPApp{}, fmt.Errorf("%s.key_file: %s: the key holds a space, a control or a non-ASCII byte: it must fit an Authorization header", key, p)
		}
	}
	if len(a.Hosts) == 0 || len(a.Hosts) > maxHTTPAppHosts {
		return HTTPApp{}, fmt.Errorf("%s.hosts: 1 to %d hosts are needed", key, maxHTTPAppHosts)
	}
	for _, host := range a.Hosts {
		if err := mintingHost(c, host); err != nil {
			return HTTPApp{}, fmt.Errorf("%s.hosts: %w", key, err)
		}
	}
	return HTTPApp{Key: line, Hosts: slices.Clone(a.Hosts)}, nil
}

// mintingHost checks that host is a configured host with a token secret
// and an OTP seed.
func mintingHost(c *Config, host string) error {
	h, ok := c.Hosts[host]
	switch {
	case !ok:
		return fmt.Errorf("%q is not a [hosts.\"...\"] section", host)
	case len(h.TokenSecrets) == 0:
		return fmt.Errorf("%q accepts JWTs only: it has no token_secret and otp_seed to mint with", host)
	}
	return nil
}

// buildHTTPCredentials validates the [http.credentials] section.
func buildHTTPCredentials(c *Config, cf *httpCredentialsFile, unix bool) (*HTTPCredentials, error) {
	if cf.Host == "" {
		return nil, errors.New("http.credentials.host is missing")
	}
	if err := mintingHost(c, cf.Host); err != nil {
		return nil, fmt.Errorf("http.credentials.host: %w", err)
	}
	cr := &HTTPCredentials{Host: cf.Host, UserHeader: DefaultUserHeader}
	if cf.UserHeader != "" {
		if !headerToken.MatchString(cf.UserHeader) {
			return nil, fmt.Errorf("http.credentials.user_header: %q is not a header name", cf.UserHeader)
		}
		cr.UserHeader = cf.UserHeader
	}
	switch {
	case unix && len(cf.TrustedProxies) > 0:
		return nil, errors.New("http.credentials.trusted_proxies: on a Unix socket the socket's owner, group and mode decide who may connect: remove trusted_proxies")
	case !unix && len(cf.TrustedProxies) == 0:
		return nil, errors.New("http.credentials.trusted_proxies is empty: no request could name a user; list the login proxy's addresses")
	case len(cf.TrustedProxies) > maxTrustedProxies:
		return nil, fmt.Errorf("http.credentials.trusted_proxies: at most %d", maxTrustedProxies)
	}
	for _, s := range cf.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("http.credentials.trusted_proxies: %q is neither an address nor a prefix (127.0.0.1/32)", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("http.credentials.trusted_proxies: %q has bits set past its prefix length", s)
		}
		cr.TrustedProxies = append(cr.TrustedProxies, p)
	}
	return cr, nil
}
