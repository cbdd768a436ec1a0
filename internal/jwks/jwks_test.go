package jwks

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
	"github.com/tokenauthd/tokenauthd/verifier"
)

var testKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var k [2]*rsa.PrivateKey
	for i := range k {
		var err error
		if k[i], err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	}
	return k
})

// provider is an httptest HTTPS server that serves a JWK Set and a
// discovery document, as the test sets them, and counts the fetches.
type provider struct {
	srv     *httptest.Server
	caFile  string
	mu      sync.Mutex
	kids    []string // the set's keys: kid i is testKeys()[i%2]
	cache   string   // Cache-Control
	status  int      // 0: 200
	body    []byte   // if set, served instead of the set
	issuer  string   // the discovery document's
	jwks    atomic.Int64
	discovd atomic.Int64
}

func newProvider(t *testing.T) *provider {
	p := &provider{kids: []string{"k1"}, cache: "no-store"}
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks", p.serveSet)
	mux.HandleFunc("/realm/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.discovd.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]string{"issuer": p.issuer, "jwks_uri": p.srv.URL + "/jwks"})
	})
	mux.HandleFunc("/redirect/{n}", func(w http.ResponseWriter, r *http.Request) {
		switch n := r.PathValue("n"); n {
		case "0":
			http.Redirect(w, r, "/jwks", http.StatusFound)
		case "http":
			http.Redirect(w, r, "http://"+r.Host+"/jwks", http.StatusFound)
		default:
			http.Redirect(w, r, "/redirect/"+n[1:], http.StatusFound)
		}
	})
	p.srv = httptest.NewTLSServer(mux)
	t.Cleanup(p.srv.Close)
	p.issuer = p.srv.URL + "/realm"
	p.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	if err := os.WriteFile(p.caFile, pemCert, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *provider) serveSet(w http.ResponseWriter, _ *http.Request) {
	p.jwks.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status != 0 {
		w.WriteHeader(p.status)
		return
	}
	w.Header().Set("Cache-Control", p.cache)
	if p.body != nil {
		w.Write(p.body)
		return
	}
	var set jose.JSONWebKeySet
	for i, kid := range p.kids {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: testKeys()[i%2].Public(), KeyID: kid, Use: "sig"})
	}
	json.NewEncoder(w).Encode(set)
}

func (p *provider) set(f func(p *provider)) { p.mu.Lock(); f(p); p.mu.Unlock() }

// testJWT is the settings whose ParseKeySet the fetchers use.
func testJWT() *verifier.JWT { return &verifier.JWT{Algorithms: []string{"RS256"}} }

// newFetcher returns a fetcher of the provider's /jwks on the clock.
func newFetcher(t *testing.T, p *provider, c *testclock.Clock, spec Spec) *Fetcher {
	t.Helper()
	if spec.URL == "" && !spec.Discovery {
		spec.URL = p.srv.URL + "/jwks"
	}
	spec.CAFile = p.caFile
	f, err := New(spec, Options{Parse: testJWT().ParseKeySet, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

func kids(t *testing.T, f *Fetcher) string {
	t.Helper()
	s, err := f.KeySet(context.Background())
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.Join(s.Kids(), ",")
}

// The refresh interval: max-age clamped to [5 min, 24 h], the minimum
// without max-age or with no-store, and at most half of keys_max_stale.
func TestRefreshAfter(t *testing.T) {
	for _, tt := range []struct {
		cache    []string
		maxStale time.Duration
		want     time.Duration
	}{
		{nil, DefaultMaxStale, MinRefresh},
		{[]string{"no-store"}, DefaultMaxStale, MinRefresh},
		{[]string{"max-age=3600, no-store"}, DefaultMaxStale, MinRefresh},
		{[]string{"no-cache", "max-age=3600"}, DefaultMaxStale, MinRefresh},
		{[]string{"max-age=60"}, DefaultMaxStale, MinRefresh},
		{[]string{"public, max-age=3600"}, DefaultMaxStale, time.Hour},
		{[]string{`max-age="7200"`}, DefaultMaxStale, 2 * time.Hour},
		{[]string{"max-age=999999999999"}, 72 * time.Hour, MaxRefresh},
		{[]string{"max-age=86400"}, DefaultMaxStale, 12 * time.Hour}, // half of keys_max_stale
		{[]string{"max-age=-5"}, DefaultMaxStale, MinRefresh},
		{[]string{"max-age=soon"}, DefaultMaxStale, MinRefresh},
		{[]string{"max-age=3600"}, 10 * time.Second, 5 * time.Second},
	} {
		h := http.Header{"Cache-Control": tt.cache}
		if got := refreshAfter(h, tt.maxStale); got != tt.want {
			t.Errorf("refreshAfter(%q, %v) = %v, want %v", tt.cache, tt.maxStale, got, tt.want)
		}
	}
}

// Failed fetches are retried after 1 s, doubling, at most a minute.
func TestRetryAfter(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 6: 32 * time.Second, 7: time.Minute, 100: time.Minute} {
		if got := retryAfter(n); got != want {
			t.Errorf("retryAfter(%d) = %v, want %v", n, got, want)
		}
	}
}

// The fetch rules on an injected clock: the set is kept while the
// provider is down until keys_max_stale, an unknown kid fetches again at
// most once per minute (any fetch counts), and a rotated set is taken.
func TestFetcherRules(t *testing.T) {
	p := newProvider(t)
	c := testclock.New(time.Unix(1_700_000_000, 0))
	f := newFetcher(t, p, c, Spec{MaxStale: time.Hour})
	ctx := context.Background()
	if got := kids(t, f); !strings.Contains(got, "no key set fetched yet") {
		t.Fatalf("before a fetch: %s", got)
	}
	if err := f.FetchOnce(ctx); err != nil {
		t.Fatal(err)
	}
	set, _ := f.KeySet(ctx)
	if st := f.Status(); st.Next != c.Now().Add(MinRefresh) || kids(t, f) != "k1" {
		t.Fatalf("after a fetch: next %v, kids %s", st.Next.Sub(c.Now()), kids(t, f))
	}
	steps := []struct {
		name    string
		do      func()
		fetches int64  // of the set, in all
		want    string // kids, or the error's start
	}{
		{"rotated, refetch too soon", func() {
			p.set(func(p *provider) { p.kids = []string{"k1", "k2"} })
			c.Add(59 * time.Second)
			if f.Refresh(ctx, set) != set {
				t.Error("refresh within a minute gave another set")
			}
		}, 1, "k1"},
		{"refetch after a minute", func() {
			c.Add(2 * time.Second)
			if got := f.Refresh(ctx, set); got == set || strings.Join(got.Kids(), ",") != "k1,k2" {
				t.Error("refresh after a minute did not give the new set")
			}
		}, 2, "k1,k2"},
		{"a refresh with an older set gets the new one, no fetch", func() {
			c.Add(2 * time.Minute)
			if got := f.Refresh(ctx, set); strings.Join(got.Kids(), ",") != "k1,k2" {
				t.Error("refresh with an old set")
			}
		}, 2, "k1,k2"},
		{"provider down: the set stays", func() {
			p.set(func(p *provider) { p.status = http.StatusServiceUnavailable })
			c.Add(30 * time.Minute)
			if err := f.FetchOnce(ctx); err == nil || !strings.Contains(err.Error(), "503") {
				t.Errorf("fetch from a provider down: %v", err)
			}
		}, 3, "k1,k2"},
		{"a failed fetch counts for the minute", func() {
			c.Add(30 * time.Second)
			cur, _ := f.KeySet(ctx)
			if f.Refresh(ctx, cur) != cur {
				t.Error("refresh gave another set")
			}
		}, 3, "k1,k2"},
		{"past keys_max_stale", func() { c.Add(31 * time.Minute) }, 3, "error: the key set from"},
		{"back: fresh again", func() {
			p.set(func(p *provider) { p.status = 0 })
			if err := f.FetchOnce(ctx); err != nil {
				t.Error(err)
			}
		}, 4, "k1,k2"},
		{"a bad set is a failed fetch: the good one stays", func() {
			p.set(func(p *provider) {
				p.body = []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"s"}]}`)
			})
			if err := f.FetchOnce(ctx); err == nil || !strings.Contains(err.Error(), "symmetric") {
				t.Errorf("a set with a secret key: %v", err)
			}
		}, 5, "k1,k2"},
	}
	for _, s := range steps {
		s.do()
		if got := kids(t, f); !strings.HasPrefix(got, s.want) || p.jwks.Load() != s.fetches {
			t.Errorf("%s: %q after %d fetches, want %q after %d", s.name, got, p.jwks.Load(), s.want, s.fetches)
		}
	}
}

// What a fetch refuses: another issuer's discovery document, a redirect
// to http or too many, a body over MaxBody, a status but 200.
func TestFetchBounds(t *testing.T) {
	p := newProvider(t)
	c := testclock.New(time.Unix(1_700_000_000, 0))
	big := append([]byte(`{"keys":[],"x":"`), strings.Repeat("a", MaxBody)...)
	for _, tt := range []struct {
		name  string
		spec  func() Spec
		setup func(p *provider)
		err   string // "" : fetched
	}{
		{"discovery", func() Spec { return Spec{Discovery: true, Issuer: p.issuer} }, nil, ""},
		// OpenID Connect Discovery: the trailing / removed before appending.
		{"discovery, issuer with a trailing slash", func() Spec { return Spec{Discovery: true, Issuer: p.issuer + "/"} },
			func(p *provider) { p.issuer += "/" }, ""},
		{"discovery of another issuer", func() Spec { return Spec{Discovery: true, Issuer: p.issuer} },
			func(p *provider) { p.issuer = "https://evil.example/realm" }, "not \"" + p.issuer + "\" exactly"},
		{"discovery, issuer differing by a slash", func() Spec { return Spec{Discovery: true, Issuer: p.issuer} },
			func(p *provider) { p.issuer += "/" }, "exactly"},
		{"redirects", func() Spec { return Spec{URL: p.srv.URL + "/redirect/aa0"} }, nil, ""},
		{"too many redirects", func() Spec { return Spec{URL: p.srv.URL + "/redirect/aaaaa0"} }, nil, "more than 3 redirects"},
		{"a redirect to http", func() Spec { return Spec{URL: p.srv.URL + "/redirect/http"} }, nil, "only to https"},
		{"too large", func() Spec { return Spec{} }, func(p *provider) { p.body = big }, "larger than 1048576 bytes"},
		{"not found", func() Spec { return Spec{URL: p.srv.URL + "/nothing"} }, nil, "404"},
		{"HTML", func() Spec { return Spec{} }, func(p *provider) { p.body = []byte("<html>") }, "not a JWK Set"},
	} {
		p.set(func(p *provider) { p.body, p.issuer = nil, p.srv.URL+"/realm" })
		spec := tt.spec()
		if tt.setup != nil {
			p.set(tt.setup)
		}
		f := newFetcher(t, p, c, spec)
		err := f.FetchOnce(context.Background())
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.err)
		case tt.err != "" && kids(t, f) == "k1":
			t.Errorf("%s: a set was taken", tt.name)
		}
	}
}

// Without the provider's CA, nothing is fetched: the system's roots do not
// hold a throwaway CA.
func TestFetchNeedsTheCA(t *testing.T) {
	p := newProvider(t)
	f, err := New(Spec{URL: p.srv.URL + "/jwks"}, Options{Parse: testJWT().ParseKeySet})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.FetchOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("fetch without the CA: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o644)
	if _, err := New(Spec{URL: p.srv.URL + "/jwks", CAFile: bad}, Options{Parse: testJWT().ParseKeySet}); err == nil ||
		!strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a CA file without a certificate: %v", err)
	}
}

// http:// only to a loopback address; no user information or fragment.
func TestCheckURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://idp.example/jwks":               true,
		"https://idp.example:8443/realms/x/jwks": true,
		"http://127.0.0.1:8080/jwks":             true,
		"http://127.0.0.2/jwks":                  true,
		"http://[::1]:8080/jwks":                 true,
		"http://localhost:8080/jwks":             true,
		"http://idp.example/jwks":                false,
		"http://10.0.0.1/jwks":                   false,
		"http://127.0.0.1.example/jwks":          false,
		"http://[::ffff:10.0.0.1]/jwks":          false,
		"ftp://idp.example/jwks":                 false,
		"https://user:pw@idp.example/jwks":       false,
		"https://idp.example/jwks#x":             false,
		"/jwks":                                  false,
		"https:///jwks":                          false,
		"idp.example/jwks":                       false,
	} {
		if err := CheckURL(u); (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v, want ok %v", u, err, ok)
		}
	}
}

// A plain HTTP fetcher dials loopback addresses only, whatever a name
// resolves to.
func TestPlainHTTPDialsLoopbackOnly(t *testing.T) {
	c, err := newClient("", true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = get(context.Background(), c, "http://192.0.2.1:9/jwks")
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("dial 192.0.2.1 over plain HTTP: %v", err)
	}
}

// A pool keeps a host's fetcher, and its set, across reloads while its
// URL (and algorithms) do not change, and stops the fetchers no host
// uses.
func TestPool(t *testing.T) {
	p := newProvider(t)
	pool := NewPool(discard(), nil)
	defer pool.Close()
	attach := func(url string, algs ...string) *Fetcher {
		j := &verifier.JWT{Algorithms: algs}
		done, err := pool.Attach(map[string]Host{"example.org": {Spec: Spec{URL: url, CAFile: p.caFile}, JWT: j}})
		if err != nil {
			t.Fatal(err)
		}
		done(true)
		return j.Keys.(*Fetcher)
	}
	first := attach(p.srv.URL+"/jwks", "RS256")
	if got := attach(p.srv.URL+"/jwks", "RS256"); got != first {
		t.Error("same URL: a new fetcher")
	}
	second := attach(p.srv.URL+"/jwks?v=2", "RS256")
	if second == first {
		t.Error("another URL: the same fetcher")
	}
	if first.ctx.Err() == nil {
		t.Error("the unused fetcher was not stopped")
	}
	if third := attach(p.srv.URL+"/jwks?v=2", "RS256", "PS256"); third == second {
		t.Error("other algorithms: the same fetcher")
	}
	// A reload that fails: the fetchers it started stop, the others stay.
	j := &verifier.JWT{Algorithms: []string{"ES256"}}
	done, err := pool.Attach(map[string]Host{"example.org": {Spec: Spec{URL: p.srv.URL + "/jwks?v=3", CAFile: p.caFile}, JWT: j}})
	if err != nil {
		t.Fatal(err)
	}
	done(false)
	if j.Keys.(*Fetcher).ctx.Err() == nil {
		t.Error("a fetcher of a failed reload was not stopped")
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Many JWTs of an unknown kid at once: one fetch between them, whatever
// their order.
func TestRefreshConcurrent(t *testing.T) {
	p := newProvider(t)
	c := testclock.New(time.Unix(1_700_000_000, 0))
	f := newFetcher(t, p, c, Spec{})
	ctx := context.Background()
	if err := f.FetchOnce(ctx); err != nil {
		t.Fatal(err)
	}
	set, _ := f.KeySet(ctx)
	p.set(func(p *provider) { p.kids = []string{"k1", "k2"} })
	c.Add(MinRefetch)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if got := f.Refresh(ctx, set); len(got.Kids()) != 2 {
				t.Errorf("refresh: kids %v", got.Kids())
			}
		})
	}
	wg.Wait()
	if n := p.jwks.Load(); n != 2 {
		t.Errorf("%d fetches, want 2: the first and one refresh", n)
	}
}

// A JWT right after Start waits for the first fetch, which Start has
// begun before it returns: it is not refused for a fetch not yet begun.
func TestStartFetchesBeforeReturning(t *testing.T) {
	p := newProvider(t)
	for i := range 20 {
		f := newFetcher(t, p, testclock.New(time.Unix(1_700_000_000, 0)), Spec{})
		f.Start()
		if s, err := f.KeySet(context.Background()); err != nil || s == nil {
			t.Fatalf("try %d: KeySet right after Start: %v", i, err)
		}
	}
}
