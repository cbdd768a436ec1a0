package daemon

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// keyServer serves a key set file over plain HTTP on loopback (which
// keys_url allows there), counting the fetches; down makes it answer 503.
type keyServer struct {
	srv     *httptest.Server
	fetches atomic.Int64
	down    atomic.Bool
}

func newKeyServer(t *testing.T, setFile string) *keyServer {
	set, err := os.ReadFile(setFile)
	if err != nil {
		t.Fatal(err)
	}
	k := &keyServer{}
	k.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		k.fetches.Add(1)
		if k.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write(set)
	}))
	t.Cleanup(k.srv.Close)
	return k
}

// TestFetchedKeysKeptOnReload: a helper whose host's keys are fetched
// accepts a JWT of the fetched set once; a reload that keeps the URL keeps
// the set (no fetch; a provider down changes nothing); a reload with
// another URL fetches again.
func TestFetchedKeysKeptOnReload(t *testing.T) {
	dir := t.TempDir()
	key := fixture.NewJWTKey(t, dir, "idp-1")
	ks := newKeyServer(t, key.Set)
	path := fixture.ConfigPath(t)
	section := func(url string) string { return "[hosts.\"a.example\".jwt]\nkeys_url = \"" + url + "\"\n" }
	fixture.WriteFile(t, path, section(ks.srv.URL+"/jwks"))
	s := startSession(t, path)
	tok := key.Mint(t, "alice", "a.example")
	if !s.auth("alice", "a.example", tok) || s.auth("alice", "a.example", tok) {
		t.Fatalf("a JWT of the fetched set: want accepted once\n%s", s.stderr)
	}
	if n := ks.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	ks.down.Store(true)
	s.reload()
	if !s.auth("bob", "a.example", key.Mint(t, "bob", "a.example")) || s.auth("alice", "a.example", tok) {
		t.Fatalf("after a reload, the provider down: the set must be kept, the replay refused\n%s", s.stderr)
	}
	if n := ks.fetches.Load(); n != 1 {
		t.Errorf("%d fetches after a reload with the same URL, want 1", n)
	}
	ks.down.Store(false)
	fixture.WriteFile(t, path, section(ks.srv.URL+"/jwks?v=2"))
	s.reload()
	if !s.auth("carol", "a.example", key.Mint(t, "carol", "a.example")) || ks.fetches.Load() != 2 {
		t.Errorf("another URL: %d fetches, want 2\n%s", ks.fetches.Load(), s.stderr)
	}
}

// TestCheckConfigFetchesKeys: check-config fetches a host's keys once and
// says which it got; with the provider down, it warns, and passes (serve
// starts all the same).
func TestCheckConfigFetchesKeys(t *testing.T) {
	dir := t.TempDir()
	key := fixture.NewJWTKey(t, dir, "idp-1")
	ks := newKeyServer(t, key.Set)
	path := fixture.ConfigPath(t)
	fixture.WriteFile(t, path, "[hosts.\"a.example\".jwt]\nkeys_url = \""+ks.srv.URL+"/jwks\"\n")
	code, out, _ := runCmd(t, "", "check-config", "-config", path)
	if code != 0 || !strings.Contains(out, `note: host "a.example": 1 JWT key(s) fetched from `+ks.srv.URL+"/jwks (kids idp-1)") {
		t.Errorf("check-config: exit %d:\n%s", code, out)
	}
	ks.down.Store(true)
	code, out, _ = runCmd(t, "", "check-config", "-config", path)
	if code != 0 || !strings.Contains(out, `warning: host "a.example": cannot fetch its JWT keys`) || !strings.Contains(out, "503") {
		t.Errorf("check-config, the provider down: exit %d:\n%s", code, out)
	}
}

// TestKeysUnavailableWarns: a JWT refused because the host has no key set
// it may use is logged at warn level, as a store that cannot answer is:
// every JWT of the host is being refused.
func TestKeysUnavailableWarns(t *testing.T) {
	dir := t.TempDir()
	key := fixture.NewJWTKey(t, dir, "idp-1")
	ks := newKeyServer(t, key.Set)
	ks.down.Store(true)
	path := fixture.ConfigPath(t)
	fixture.WriteFile(t, path, "[hosts.\"a.example\".jwt]\nkeys_url = \""+ks.srv.URL+"/jwks\"\n")
	s := startSession(t, path)
	if s.auth("alice", "a.example", key.Mint(t, "alice", "a.example")) {
		t.Fatal("a JWT accepted with no key set")
	}
	fixture.WaitFor(t, "the refusal's log line", func() bool { return strings.Contains(s.stderr.String(), "reason=keys_unavailable") })
	if !strings.Contains(s.stderr.String(), "level=WARN msg=refused reason=keys_unavailable") {
		t.Errorf("the refusal is not logged at warn level:\n%s", s.stderr)
	}
}
