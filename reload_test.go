package main

import (
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/cli"
)

// TestReloadKeepsStoreAndOldConfigOnFailure: SIGHUP (injected) applies new
// hosts and secrets to the next request, keeps the replay store, and a bad
// file leaves the previous configuration serving.
func TestReloadKeepsStoreAndOldConfigOnFailure(t *testing.T) {
	path := tempConfigPath(t)
	writeConfig(t, path, hostBlock("a.example", secretA, seedA, nil, nil))
	s := startSession(t, path)

	tokA := mintWith(t, secretA, seedA, "alice", "a.example")
	if !s.auth("alice", "a.example", tokA) {
		t.Fatalf("fresh token refused before reload: %s", s.stderr)
	}
	tokH := mintWith(t, secretH, seedH, "bob", "h.example")
	if s.auth("bob", "h.example", tokH) {
		t.Fatal("token for a host not yet configured accepted")
	}

	// New host, and a.example's secret rotated.
	writeConfig(t, path, hostBlock("a.example", secretB, seedA, []string{secretA}, nil)+
		hostBlock("h.example", secretH, seedH, nil, nil))
	s.reload()
	if !strings.Contains(s.stderr.String(), "configuration reloaded") {
		t.Fatalf("reload not logged as done: %s", s.stderr)
	}
	if s.auth("alice", "a.example", tokA) {
		t.Fatal("token accepted before the reload accepted again after it: replay store lost")
	}
	if !s.auth("bob", "h.example", mintWith(t, secretH, seedH, "bob", "h.example")) {
		t.Fatal("new host not in effect after reload")
	}
	if !s.auth("alice", "a.example", mintWith(t, secretB, seedA, "alice", "a.example")) {
		t.Fatal("new secret not in effect after reload")
	}

	// A file that does not load: logged, and the previous one keeps serving.
	writeConfig(t, path, "[hosts.\"a.example\"]\ntoken_secret = \n")
	s.reload()
	if !strings.Contains(s.stderr.String(), "configuration reload failed") {
		t.Fatalf("failed reload not logged: %s", s.stderr)
	}
	if !s.auth("bob", "h.example", mintWith(t, secretH, seedH, "bob", "h.example")) {
		t.Fatal("a failed reload took the previous configuration away")
	}
	if !s.auth("alice", "a.example", mintWith(t, secretA, seedA, "alice", "a.example")) {
		t.Fatal("a failed reload took the old secret away")
	}

	// Changing [token] needs a restart: refused, previous one kept.
	writeConfig(t, path, "[token]\ndrift = 3\n"+hostBlock("a.example", secretB, seedA, nil, nil))
	s.reload()
	if got := strings.Count(s.stderr.String(), "configuration reload failed"); got != 2 {
		t.Fatalf("reload changing [token] not refused (%d failures logged): %s", got, s.stderr)
	}
	if !s.auth("alice", "a.example", mintWith(t, secretA, seedA, "alice", "a.example")) {
		t.Fatal("a refused reload was partly applied")
	}
	if code := s.close(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// TestReloadAppliesLogLevel: [log] level is applied by a reload.
func TestReloadAppliesLogLevel(t *testing.T) {
	path := tempConfigPath(t)
	writeConfig(t, path, "[log]\nlevel = \"info\"\n"+hostBlock("a.example", secretA, seedA, nil, nil))
	s := startSession(t, path)
	s.auth("alice", "a.example", mintWith(t, secretA, seedA, "alice", "a.example"))
	if strings.Contains(s.stderr.String(), "accepted") {
		t.Fatal("accepted logged at level info")
	}
	writeConfig(t, path, "[log]\nlevel = \"debug\"\n"+hostBlock("a.example", secretA, seedA, nil, nil))
	s.reload()
	s.auth("alice", "a.example", mintWith(t, secretA, seedA, "alice", "a.example"))
	if !strings.Contains(s.stderr.String(), "msg=accepted") {
		t.Fatalf("debug level not in effect after reload: %s", s.stderr)
	}
}

// TestRotationProcedure follows README's "Rotating secrets" step by step,
// rotating a host's token secret and OTP seed at once, with the application
// switching in the middle: every token the application mints is accepted at
// every step, including tokens minted just before a step and used after it.
func TestRotationProcedure(t *testing.T) {
	path := tempConfigPath(t)
	const host, user = "a.example", "alice"
	old := func() string { return mintWith(t, secretA, seedA, user, host) }
	cur := func() string { return mintWith(t, secretB, seedB, user, host) }

	// Step 0: the application and tokenauthd share A.
	writeConfig(t, path, hostBlock(host, secretA, seedA, nil, nil))
	s := startSession(t, path)
	if !s.auth(user, host, old()) {
		t.Fatal("step 0: token refused")
	}
	inFlight := old() // minted by the application, not yet used

	// Step 1: B becomes current, A moves to the old lists; reload.
	writeConfig(t, path, hostBlock(host, secretB, seedB, []string{secretA}, []string{seedA}))
	s.reload()
	if !s.auth(user, host, inFlight) {
		t.Fatal("step 1: token minted before the reload refused after it")
	}
	if !s.auth(user, host, old()) {
		t.Fatal("step 1: the application (still on A) refused")
	}
	if !s.auth(user, host, cur()) {
		t.Fatal("step 1: a token of the new secret refused")
	}
	// mint uses the new secret and seed only.
	if got := mintToken(t, path, user+"@"+host); !acceptedBy(t, secretB, seedB, user, host, got) || acceptedBy(t, secretA, seedA, user, host, got) {
		t.Fatal("step 1: tokenauthd mint does not use the new secret and seed")
	}

	// Step 2: the application switches to B; its last A token is used late.
	inFlight = old()
	if !s.auth(user, host, cur()) {
		t.Fatal("step 2: the application (now on B) refused")
	}
	if !s.auth(user, host, inFlight) {
		t.Fatal("step 2: last token of the old secret refused")
	}

	// Step 3: A removed; reload. B still accepted, A no longer.
	writeConfig(t, path, hostBlock(host, secretB, seedB, nil, nil))
	s.reload()
	if !s.auth(user, host, cur()) {
		t.Fatal("step 3: the application refused")
	}
	if s.auth(user, host, old()) {
		t.Fatal("step 3: the removed secret still accepted")
	}
}

// mintToken runs tokenauthd mint.
func mintToken(t *testing.T, cfg, jid string) string {
	t.Helper()
	var out, errb syncBuffer
	if code := run(t.Context(), &cli.Env{Stdout: &out, Stderr: &errb}, []string{"mint", "-config", cfg, jid}); code != 0 {
		t.Fatalf("mint: exit %d: %s", code, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// acceptedBy reports whether a verifier with only this secret and seed
// accepts the token.
func acceptedBy(t *testing.T, secret, seed, user, host, token string) bool {
	t.Helper()
	path := tempConfigPath(t)
	writeConfig(t, path, "[daemon]\nsocket = \""+path+".sock\"\n"+hostBlock(host, secret, seed, nil, nil))
	var out, errb syncBuffer
	return run(t.Context(), &cli.Env{Stdout: &out, Stderr: &errb}, []string{"explain", "-config", path, user + "@" + host, token}) == 0
}
