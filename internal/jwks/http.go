package jwks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// Bounds of one fetch.
const (
	MaxBody      = 1 << 20         // bytes of a key set or discovery document
	FetchTimeout = 5 * time.Second // a fetch, discovery and key set together
	MaxRedirects = 3               // each to HTTPS
	maxCAFile    = 1 << 20         // bytes of keys_ca_file
)

// wellKnown is what OpenID Connect Discovery 1.0 §4 appends to the issuer.
const wellKnown = "/.well-known/openid-configuration"

// CheckURL reports whether u may be fetched: an absolute https:// URL, or
// http:// to a loopback address (127.0.0.0/8, ::1, localhost): plain HTTP
// on any other network lets whoever is on the path give the keys, and so
// sign logins. No user information, no fragment.
func CheckURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	switch {
	case p.Scheme != "https" && p.Scheme != "http":
		return fmt.Errorf("scheme %q: https:// only (http:// to a loopback address)", p.Scheme)
	case p.Host == "" || p.Opaque != "":
		return fmt.Errorf("no host")
	case p.User != nil:
		return fmt.Errorf("user information in a URL is not taken")
	case p.Fragment != "" || strings.Contains(u, "#"):
		return fmt.Errorf("a fragment in a URL is not taken")
	case p.Scheme == "http" && !isLoopback(p.Hostname()):
		return fmt.Errorf("http:// to %s: plain HTTP only to a loopback address (127.0.0.1, [::1], localhost); use https://", p.Hostname())
	}
	return nil
}

// CheckIssuer reports whether u may be a discovery issuer: CheckURL's
// rules, and no query (OpenID Connect Discovery 1.0 §2: the discovery
// document's URL is the issuer followed by a path).
func CheckIssuer(u string) error {
	if err := CheckURL(u); err != nil {
		return err
	}
	if strings.Contains(u, "?") {
		return fmt.Errorf("an issuer has no query (OpenID Connect Discovery)")
	}
	return nil
}

// isLoopback reports whether host is a loopback IP literal or localhost.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DiscoveryURL returns the discovery document's URL of issuer: the
// issuer with any trailing "/" removed, then wellKnown.
func DiscoveryURL(issuer string) string {
	return strings.TrimRight(issuer, "/") + wellKnown
}

// redact returns u without its query, for logs and errors.
func redact(u string) string {
	if i := strings.IndexAny(u, "?"); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

// newClient returns the HTTP client of a fetcher: the roots of caFile
// (the system's if ""), TLS 1.2 at least, no proxy, FetchTimeout,
// MaxRedirects to HTTPS only; with loopbackOnly, it dials loopback
// addresses only.
func newClient(caFile string, loopbackOnly bool) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := readCAFile(caFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	d := &net.Dialer{Timeout: FetchTimeout}
	if loopbackOnly {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("jwks: %s is not a loopback address, and the keys are fetched over plain HTTP", host)
			}
			return nil
		}
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSClientConfig:        tc,
		TLSHandshakeTimeout:    FetchTimeout,
		ResponseHeaderTimeout:  FetchTimeout,
		MaxIdleConns:           2,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{Transport: tr, Timeout: FetchTimeout, CheckRedirect: checkRedirect}, nil
}

// checkRedirect follows at most MaxRedirects redirects, each to HTTPS.
func checkRedirect(req *http.Request, via []*http.Request) error {
	switch {
	case len(via) > MaxRedirects:
		return fmt.Errorf("more than %d redirects", MaxRedirects)
	case req.URL.Scheme != "https":
		return fmt.Errorf("a redirect to %s: only to https://", req.URL.Scheme+"://"+req.URL.Host)
	}
	return nil
}

// readCAFile reads a PEM bundle of CA certificates.
func readCAFile(path string) (*x509.CertPool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys_ca_file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("keys_ca_file: %w", err)
	}
	if len(data) > maxCAFile {
		return nil, fmt.Errorf("keys_ca_file: %s is larger than %d bytes", path, maxCAFile)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("keys_ca_file: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// response is what a fetch got: the body, and when to fetch again.
type response struct {
	body   []byte
	header http.Header
}

// get fetches u: status 200, a body of at most MaxBody bytes.
func get(ctx context.Context, c *http.Client, u string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return response{}, fmt.Errorf("%s: %w", redact(u), err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its text quotes the URL whole
			err = ue.Err
		}
		return response{}, fmt.Errorf("%s: %w", redact(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return response{}, fmt.Errorf("%s: HTTP status %s", redact(u), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	switch {
	case err != nil:
		return response{}, fmt.Errorf("%s: %w", redact(u), err)
	case len(body) > MaxBody:
		return response{}, fmt.Errorf("%s: the response is larger than %d bytes", redact(u), MaxBody)
	}
	return response{body: body, header: resp.Header}, nil
}

// discover reads the provider's discovery document and returns its
// jwks_uri. Its issuer must be the configured one exactly (OpenID Connect
// Discovery §4.3), and its jwks_uri pass CheckURL.
func discover(ctx context.Context, c *http.Client, issuer string) (string, error) {
	r, err := get(ctx, c, DiscoveryURL(issuer))
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer  *string `json:"issuer"`
		JWKSURI *string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		return "", fmt.Errorf("%s: not a discovery document (a JSON object)", DiscoveryURL(issuer))
	}
	switch {
	case doc.Issuer == nil || *doc.Issuer != issuer:
		return "", fmt.Errorf("%s: the document's issuer is not %q exactly: another provider's", DiscoveryURL(issuer), issuer)
	case doc.JWKSURI == nil || *doc.JWKSURI == "":
		return "", fmt.Errorf("%s: the document has no jwks_uri", DiscoveryURL(issuer))
	}
	if err := CheckURL(*doc.JWKSURI); err != nil {
		return "", fmt.Errorf("%s: its jwks_uri %s: %w", DiscoveryURL(issuer), redact(*doc.JWKSURI), err)
	}
	return *doc.JWKSURI, nil
}
