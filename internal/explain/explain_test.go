package explain

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/daemon/daemontest"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
)

const seedC = "KRUGKIDROVUWG2ZAMJZG653OEBTG66BA" // configured nowhere

// explainConfig: a.example rotating (B old), b.example with its own secret
// and seed, c.example sharing a.example's seed.
func explainConfig(t *testing.T) string {
	t.Helper()
	return fixture.WriteFile(t, fixture.ConfigPath(t),
		"[daemon]\nsocket = \""+filepath.Join(t.TempDir(), "none.sock")+"\"\n"+
			fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, []string{fixture.SecretB}, []string{fixture.SeedB})+
			fixture.HostBlock("b.example", fixture.SecretH, fixture.SeedH, nil, nil)+
			fixture.HostBlock("c.example", "secret-C-0a1b2c3d", fixture.SeedA, nil, nil))
}

// explainWants runs explain as of now and checks its exit status and that
// its output holds every line of want; it returns the output.
func explainWants(t *testing.T, cfg string, now time.Time, jid, token string, code int, want []string) string {
	t.Helper()
	got, out := explainAt(t, cfg, now, nil, jid, token)
	if got != code {
		t.Errorf("exit status %d, want %d\n%s", got, code, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	return out
}

// explainAt runs tokenauthd explain as of time at.
func explainAt(t *testing.T, cfg string, at time.Time, extra []string, jid, token string) (int, string) {
	t.Helper()
	var out, errb fixture.Buffer
	args := append([]string{"-config", cfg, "-at", fmt.Sprint(at.Unix())}, extra...)
	args = append(args, jid, token)
	code := Run(context.Background(), &cli.Env{Stdout: &out, Stderr: &errb}, args)
	return code, out.String() + errb.String()
}

func TestExplain(t *testing.T) {
	cfg := explainConfig(t)
	now := time.Unix(1_800_000_000, 0) // a step boundary
	at := func(d time.Duration) time.Time { return now.Add(d) }
	tests := []struct {
		name  string
		jid   string
		token string
		code  int
		want  []string // substrings of the output, in any order
	}{
		// The current secret and seed: accepted, replay not checked.
		{"current", "alice@a.example", fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", "a.example", now), 0,
			[]string{"alice@a.example: accepted (if not already used)", "signature: token_secret (the current one)", "step +0"}},
		// An old secret still listed: accepted, and says which.
		{"old secret", "alice@a.example", fixture.MintAt(t, fixture.SecretB, fixture.SeedA, "alice", "a.example", now), 0,
			[]string{"accepted", "old_token_secrets[0]: the application still signs with an old secret"}},
		// An old seed still listed.
		{"old seed", "alice@a.example", fixture.MintAt(t, fixture.SecretA, fixture.SeedB, "alice", "a.example", now), 0,
			[]string{"accepted", "old_otp_seeds[0]", "still uses an old otp_seed"}},
		// Inside the window, one step back.
		{"one step early", "alice@a.example", fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", "a.example", at(-30*time.Second)), 0,
			[]string{"accepted", "step -1 (30 s in the past)"}},
		// Malformed: where, in bytes.
		{"bad base64", "alice@a.example", "12345678 !!!!", 1,
			[]string{"refused: malformed", "at byte 9 of the token: signature is not standard base64"}},
		{"no space", "alice@a.example", "1234567890", 1,
			[]string{"refused: malformed", "at byte 10 of the token: no space before the signature"}},
		{"letter in otp", "alice@a.example", "1234x678 AAAA", 1,
			[]string{"refused: malformed", "at byte 4 of the token"}},
		// A host not configured: the configured ones are listed.
		{"unknown host", "alice@z.example", fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", "z.example", now), 1,
			[]string{"refused: unknown_host", "configured: a.example, b.example, c.example"}},
		// Clock skew made visible, both ways.
		{"ten steps in the past", "alice@a.example", fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", "a.example", at(-5*time.Minute)), 1,
			[]string{"refused: otp_out_of_window", "step -10 (300 s in the past)", "minted 300 s before now"}},
		{"three steps in the future", "alice@a.example", fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", "a.example", at(90*time.Second)), 1,
			[]string{"refused: otp_out_of_window", "step +3 (90 s in the future)", "clock is ahead"}},
		// An OTP of no configured seed.
		{"unknown seed", "alice@a.example", fixture.MintAt(t, fixture.SecretA, seedC, "alice", "a.example", now), 1,
			[]string{"refused: otp_out_of_window", "not a.example's for any time within a day"}},
		// An OTP of another host's seed.
		{"other host's seed", "alice@a.example", fixture.MintAt(t, fixture.SecretH, fixture.SeedH, "alice", "b.example", now), 1,
			[]string{"refused: otp_out_of_window", `one-time password of host "b.example"'s otp_seed`}},
		// Signed with another host's secret.
		{"other host's secret", "alice@a.example", fixture.MintAt(t, fixture.SecretH, fixture.SeedA, "alice", "a.example", now), 1,
			[]string{"refused: bad_signature", `signed with the token_secret of host "b.example"`}},
		// A token for the same user on another host.
		{"token for another host", "alice@a.example", fixture.MintAt(t, "secret-C-0a1b2c3d", fixture.SeedA, "alice", "c.example", now), 1,
			[]string{"refused: bad_signature", `it is a token for alice@c.example`}},
		// Signed for the name as typed, not as the server passes it.
		{"user name case", "alice@a.example", fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "Alice", "a.example", now), 1,
			[]string{"refused: bad_signature", `signed for the user name "Alice"`}},
		// Another user's token: no configured secret explains it.
		{"another user", "alice@a.example", fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "mallory", "a.example", now), 1,
			[]string{"refused: bad_signature", "matches no other configured host or secret", "another user name"}},
		// A secret configured nowhere.
		{"unknown secret", "alice@a.example", fixture.MintAt(t, "never-configured", fixture.SeedA, "alice", "a.example", now), 1,
			[]string{"refused: bad_signature", "matches neither token_secret nor any of the 1 old_token_secrets"}},
		// Usage errors give no verdict.
		{"not a jid", "alice", "x", 2, []string{"is not user@host"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { explainWants(t, cfg, now, tc.jid, tc.token, tc.code, tc.want) })
	}
}

// explainNow runs tokenauthd explain without -at: as of now, asking the
// daemon.
func explainNow(t *testing.T, cfg string, extra []string, jid, token string) (int, string) {
	t.Helper()
	var out, errb fixture.Buffer
	args := append([]string{"-config", cfg}, extra...)
	args = append(args, jid, token)
	code := Run(context.Background(), &cli.Env{Stdout: &out, Stderr: &errb}, args)
	return code, out.String() + errb.String()
}

// startExplainDaemon serves cfgPath's hosts with store on a Unix socket, as
// tokenauthd serve does, and returns the socket and a function that sends
// one generic request and returns the reply.
func startExplainDaemon(t *testing.T, cfgPath string, store replay.Store) (string, func(string) string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	daemontest.Start(t, cfgPath, sock, store)
	ask := func(req string) string {
		t.Helper()
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, fixture.Line(req))
		reply, err := fixture.ReadLineReply(bufio.NewReader(c))
		if err != nil {
			t.Fatal(err)
		}
		return reply
	}
	return sock, ask
}

// TestExplainAsksDaemon: explain asks a daemon's replay store through the
// "seen" and "unused" requests, which record nothing and answer yes only
// for a token the daemon can verify.
func TestExplainAsksDaemon(t *testing.T) {
	cfgPath := explainConfig(t)
	cfg, err := setup.Load(cfgPath, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: cfg.Verifier.Params.ReplayTTL()})
	sock, ask := startExplainDaemon(t, cfgPath, store)

	now := time.Now()
	tok := fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", "a.example", now)
	sockArg := []string{"-socket", sock}
	for range 2 { // asking twice records nothing
		code, out := explainNow(t, cfgPath, sockArg, "alice@a.example", tok)
		if code != 0 || !strings.Contains(out, "alice@a.example: accepted\n") || !strings.Contains(out, "not used yet") {
			t.Fatalf("unused token: exit %d\n%s", code, out)
		}
	}
	if got := ask("unused:alice:a.example:" + tok); got != fixture.LineYes {
		t.Errorf("unused request for an unused token = %q, want 1", got)
	}
	if got := ask("auth:alice:a.example:" + tok); got != fixture.LineYes {
		t.Fatalf("auth after explain = %q, want accepted: explain recorded the token", got)
	}
	if got := ask("auth:alice:a.example:" + tok); got != fixture.LineNo {
		t.Fatalf("replayed auth = %q, want refused", got)
	}
	code, out := explainNow(t, cfgPath, sockArg, "alice@a.example", tok)
	if code != 1 || !strings.Contains(out, "refused: replayed") {
		t.Fatalf("used token: exit %d\n%s", code, out)
	}
	if got := ask("unused:alice:a.example:" + tok); got != fixture.LineNo {
		t.Errorf("unused request for a used token = %q, want 0", got)
	}
	// As of another time the daemon is not asked: it knows only now, on
	// its own clock. The used token, 4 s later, is not "not used yet".
	code, out = explainAt(t, cfgPath, now.Add(4*time.Second), sockArg, "alice@a.example", tok)
	if code != 0 || strings.Contains(out, "not used yet") || !strings.Contains(out, "accepted (if not already used)") ||
		!strings.Contains(out, "replay: not checked: -at") {
		t.Errorf("-at, used token: exit %d\n%s", code, out)
	}
	// Neither request reveals anything of tokens that auth would refuse
	// anyway: a forged signature, another user, a malformed token.
	forged := fixture.MintAt(t, "not-the-secret", fixture.SeedA, "alice", "a.example", now)
	fresh := fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", "a.example", now)
	for _, cmd := range []string{"seen", "unused"} {
		for _, req := range []string{
			cmd + ":alice:a.example:" + forged,
			cmd + ":bob:a.example:" + fresh,
			cmd + ":alice:a.example:garbage",
			cmd + ":alice:z.example:" + fresh,
			cmd + ":alice:a.example:" + fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", "a.example", now.Add(-10*time.Minute)),
		} {
			if got := ask(req); got != fixture.LineNo {
				t.Errorf("%.30s... = %q, want 0", req, got)
			}
		}
	}
	// No daemon: the verdict says the replay status is unknown.
	code, out = explainNow(t, cfgPath, []string{"-socket", sock + ".none"}, "alice@a.example", fresh)
	if code != 0 || !strings.Contains(out, "replay: unknown: could not ask the daemon") {
		t.Fatalf("no daemon: exit %d\n%s", code, out)
	}
}

// unavailableStore is a replay store that cannot be reached.
type unavailableStore struct{}

func (unavailableStore) Record(context.Context, replay.Key) (bool, error) {
	return false, replay.ErrUnavailable
}
func (unavailableStore) Seen(context.Context, replay.Key) (bool, error) {
	return false, replay.ErrUnavailable
}
func (unavailableStore) Len() int               { return 0 }
func (unavailableStore) Close() error           { return nil }
func (unavailableStore) ForgottenAt() time.Time { return time.Time{} }

// When the daemon answers no to "seen" but cannot vouch that the token is
// unused (its store is down, it runs another configuration), explain says
// the replay status is unknown, never "not used yet".
func TestExplainDaemonCannotTell(t *testing.T) {
	cfgPath := explainConfig(t)
	tok := fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", "a.example", time.Now())

	down, ask := startExplainDaemon(t, cfgPath, unavailableStore{})
	if got := ask("unused:alice:a.example:" + tok); got != fixture.LineNo {
		t.Errorf("unused request with the store down = %q, want 0", got)
	}
	other := fixture.WriteFile(t, fixture.ConfigPath(t), fixture.HostBlock("a.example", "another-secret-0123", fixture.SeedA, nil, nil))
	otherSock, _ := startExplainDaemon(t, other, replay.NewMemory(replay.MemoryOptions{Capacity: 10, TTL: time.Minute}))

	for name, sock := range map[string]string{"store down": down, "other configuration": otherSock} {
		code, out := explainNow(t, cfgPath, []string{"-socket", sock}, "alice@a.example", tok)
		if code != 0 || strings.Contains(out, "not used yet") || !strings.Contains(out, "accepted (if not already used)") ||
			!strings.Contains(out, "replay: unknown: the daemon cannot tell") {
			t.Errorf("%s: exit %d\n%s", name, code, out)
		}
	}
}

// The probes of the other hosts do not run Explain's day-wide OTP search:
// with many hosts, a token of no configured seed costs one search, not one
// per host. Each check reads the clock once, each search once more.
func TestExplainProbesOtherHostsCheaply(t *testing.T) {
	var body strings.Builder
	const others = 20
	body.WriteString(fixture.HostBlock("a.example", fixture.SecretA, fixture.SeedA, nil, nil))
	for i := range others {
		body.WriteString(fixture.HostBlock(fmt.Sprintf("h%d.example", i), fmt.Sprintf("secret-%d-0123456789", i), fixture.SeedH, nil, nil))
	}
	cfg, err := setup.Load(fixture.WriteFile(t, fixture.ConfigPath(t), body.String()), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	limits := map[string]int{
		// The token's own check and search, then one check per other
		// host's seed.
		"unknown seed": 2 + others,
		// The token's own check, two for the user name's case, then per
		// other host: a token for user@other? signed with other's secret?
		"bad signature":  1 + 2 + 2*others,
		"other's secret": 1 + 2 + 2*others,
	}
	for name, tok := range map[string]string{
		"unknown seed":   fixture.MintAt(t, fixture.SecretA, seedC, "alice", "a.example", now),
		"bad signature":  fixture.MintAt(t, "never-configured", fixture.SeedA, "alice", "a.example", now),
		"other's secret": fixture.MintAt(t, "secret-3-0123456789", fixture.SeedA, "alice", "a.example", now),
	} {
		x, err := newExplainer(cfg, now)
		if err != nil {
			t.Fatal(err)
		}
		lines, _ := x.explain(context.Background(), "alice", "a.example", tok, "")
		if limit := limits[name]; x.clockReads > limit {
			t.Errorf("%s: %d clock reads for %d other hosts, want at most %d: a probe ran the OTP search\n%s",
				name, x.clockReads, others, limit, strings.Join(lines, "\n"))
		}
	}
}

// awayFromStepEdge waits, if needed, until at least 5 s of the current
// 30-second step remain, so that a test's requests fall in one step.
func awayFromStepEdge() {
	if left := 30 - time.Now().Unix()%30; left < 5 {
		time.Sleep(time.Duration(left)*time.Second + 100*time.Millisecond)
	}
}

// TestExplainStoreForgot: a daemon whose replay store may have lost
// records refuses the tokens that could have been accepted before; explain
// says so, and when the refusals end (tokens minted from then on are
// accepted), from which steps of the window the daemon refuses.
func TestExplainStoreForgot(t *testing.T) {
	cfgPath := explainConfig(t)
	for _, tc := range []struct {
		name   string
		forgot time.Duration // before now
		offset int           // the token's step
		code   int
		want   []string
		ends   int // the step from which tokens are accepted again
	}{
		{"last step, token of this step", 30 * time.Second, 0, 1,
			[]string{"alice@a.example: refused: store_forgot\n", "may have lost records", "the daemon accepts again the tokens minted from "}, 1},
		{"last step, token of the next step", 30 * time.Second, 1, 0,
			[]string{"alice@a.example: accepted\n", "not used yet"}, 0},
		{"this step", 0, 0, 0,
			[]string{"alice@a.example: accepted (if not already used)\n", "calls no token of the window unused", "tokens minted from "}, 2},
		{"three steps ago", 90 * time.Second, -1, 0,
			[]string{"alice@a.example: accepted\n", "not used yet"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			awayFromStepEdge()
			now := time.Now()
			store := replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: 2 * time.Minute})
			store.MarkForgotten(now.Add(-tc.forgot))
			sock, ask := startExplainDaemon(t, cfgPath, store)
			tok := fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", "a.example", now.Add(time.Duration(tc.offset)*30*time.Second))
			code, out := explainNow(t, cfgPath, []string{"-socket", sock}, "alice@a.example", tok)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if tc.ends != 0 {
				ends := time.Unix((now.Unix()/30+int64(tc.ends))*30, 0).Format(time.RFC3339)
				tc.want = append(tc.want, ends)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			// Explaining records nothing.
			if got, want := ask("auth:alice:a.example:"+tok), protocol.Reply(protocol.Generic, tc.code == 0 && tc.ends == 0); got != want {
				t.Errorf("auth after explain = %q, want %q", got, want)
			}
		})
	}
}

// TestExplainIsUser: explain says what isuser answers for the token's
// user: every name, none, or, on a host with isuser = "seen", whether the
// daemon knows the user, asked with isuser (which records nothing).
func TestExplainIsUser(t *testing.T) {
	cfgPath := fixture.WriteFile(t, fixture.ConfigPath(t),
		fixture.HostBlock("seen.example", fixture.SecretA, fixture.SeedA, nil, nil)+"isuser = \"seen\"\nseen_for = 30\n"+
			fixture.HostBlock("every.example", fixture.SecretA, fixture.SeedA, nil, nil)+
			fixture.HostBlock("none.example", fixture.SecretA, fixture.SeedA, nil, nil)+"isuser = false\n")
	sock, ask := startExplainDaemon(t, cfgPath, nil)
	sockArg := []string{"-socket", sock}
	now := time.Now()
	mint := func(host string) string { return fixture.MintAt(t, fixture.SecretA, fixture.SeedA, "alice", host, now) }
	for _, c := range []struct {
		host, want string
	}{
		{"every.example", "isuser: true: every name on every.example exists"},
		{"none.example", "isuser: false: no name on none.example exists"},
		{"seen.example", `isuser: "seen": the daemon does not know alice@seen.example (no login accepted within 30 days`},
	} {
		if _, out := explainNow(t, cfgPath, sockArg, "alice@"+c.host, mint(c.host)); !strings.Contains(out, c.want) {
			t.Errorf("%s: output lacks %q:\n%s", c.host, c.want, out)
		}
	}
	if got := ask("isuser:alice:seen.example"); got != fixture.LineNo {
		t.Fatalf("isuser after explain = %q, want 0: explain made alice known", got)
	}
	if got := ask("auth:alice:seen.example:" + mint("seen.example")); got != fixture.LineYes {
		t.Fatal("alice's fresh token refused")
	}
	want := `isuser: "seen": the daemon knows alice@seen.example (a login accepted within 30 days)`
	if _, out := explainNow(t, cfgPath, sockArg, "alice@seen.example", mint("seen.example")); !strings.Contains(out, want) {
		t.Errorf("after alice's login: output lacks %q:\n%s", want, out)
	}
	if _, out := explainNow(t, cfgPath, []string{"-socket", sock + ".none"}, "alice@seen.example", mint("seen.example")); !strings.Contains(out, `isuser: "seen": unknown: could not ask the daemon`) {
		t.Errorf("without a daemon: output:\n%s", out)
	}
	if _, out := explainAt(t, cfgPath, now, sockArg, "alice@seen.example", mint("seen.example")); !strings.Contains(out, "exists if a login of it was accepted within 30 days") {
		t.Errorf("-at: output:\n%s", out)
	}
}
