package explain

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
)

// TestExplainFetchedKeys: for a host whose keys are fetched, explain
// fetches them once; a provider that cannot be reached is keys_unavailable,
// explained.
func TestExplainFetchedKeys(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "idp-1", Use: "sig"}}})
	key, _ := json.Marshal(jose.JSONWebKey{Key: priv, KeyID: "idp-1", Algorithm: "EdDSA"})
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write(set)
	}))
	defer srv.Close()
	dir := t.TempDir()
	cfg := fixture.WriteFile(t, filepath.Join(dir, "config.toml"),
		"[daemon]\nsocket = \""+filepath.Join(dir, "none.sock")+"\"\n"+
			"[hosts.\"j.example\".jwt]\nkeys_url = \""+srv.URL+"/jwks\"\n")
	now := time.Unix(1_800_000_000, 0)
	tok := mintJWT(t, key, "alice", "j.example", now)
	explainWants(t, cfg, now, "alice@j.example", tok, 0,
		[]string{"keys: fetched from " + srv.URL + "/jwks: kids idp-1", "alice@j.example: accepted (if not already used)"})
	down.Store(true)
	explainWants(t, cfg, now, "alice@j.example", tok, 1,
		[]string{"this fetch failed", "502", "alice@j.example: refused: keys_unavailable", "until a fetch succeeds"})
}
