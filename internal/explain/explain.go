package explain

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/jwks"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// Exit statuses of explain.
const (
	explainAccepted = 0
	explainRefused  = 1
	explainTrouble  = 2 // bad usage or configuration: no verdict
)

// Run tells an admin why a token would be accepted or refused,
// without recording it. Whether it was already used is asked of the daemon
// over its socket: "seen" (yes: recorded) and "unused" (yes: known not
// recorded). Both answer yes only for a token with a valid signature inside
// the daemon's window: nothing an "auth" request would not reveal. Any other
// answer is "unknown". With -at the daemon is not asked: it can only say
// what it knows now, on its own clock.
func Run(ctx context.Context, e *cli.Env, args []string) int {
	fs, cfgFlag := cli.NewConfigFlags(e, "explain", "tokenauthd explain [-config FILE] [-socket PATH] [-at UNIX_SECONDS] user@host TOKEN|-")
	socket := fs.String("socket", "", "ask the daemon on this Unix socket whether the token was already used (default: [daemon] socket)")
	at := cli.AtFlag(fs, "explain as of this time, in Unix seconds (default now)")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code // 0 for -h, 2 (explainTrouble) for a bad flag
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return explainTrouble
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(e.Stderr, "tokenauthd explain: "+format+"\n", a...)
		return explainTrouble
	}
	user, host, err := cli.SplitJID(fs.Arg(0))
	if err != nil {
		return fail("%v", err)
	}
	token := fs.Arg(1)
	if token == "-" { // keeps the token out of the process list and history
		line, err := bufio.NewReader(e.Stdin).ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			return fail("reading the token from stdin: %v", err)
		}
		token = strings.TrimRight(line, "\r\n")
	}
	now, asOfNow := at.Or(time.Now()), !at.Given()
	_, file, err := cfgFlag.Load(e)
	if err != nil {
		return fail("%v", err)
	}
	cfg, err := setup.New(file)
	if err != nil {
		return fail("%v", err)
	}
	x, err := newExplainer(cfg, now)
	if err != nil {
		return fail("%s", verifier.Detail(err))
	}
	if !asOfNow {
		x.asOf = "-at explains as of another time, and the daemon can only say whether it holds the token now, on its own clock: it was not asked"
	}
	lines, ok := x.explain(ctx, user, host, token, explainSocket(file, *socket))
	for _, l := range lines {
		fmt.Fprintln(e.Stdout, l)
	}
	if ok {
		return explainAccepted
	}
	return explainRefused
}

// explainSocket is the daemon socket to ask: the flag's, else the
// configuration's ([daemon] socket, the one serve listens on).
func explainSocket(cfg *config.Config, flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return cfg.Socket
}

// explainer checks one token against a configuration with an offline
// verifier: no store, nothing recorded anywhere.
type explainer struct {
	cfg *setup.Config
	now time.Time
	v   *verifier.Offline
	// asOf says what time the verdict is for: "" for now, else why the
	// daemon is not asked.
	asOf string
	// clockReads counts the verifiers' reads of the clock: one per check,
	// one more per search for an OTP outside the window.
	clockReads int
	// fetchers fetch the keys of the hosts whose keys are fetched, once,
	// for a JWT of theirs.
	fetchers map[string]*jwks.Fetcher
}

func newExplainer(cfg *setup.Config, now time.Time) (*explainer, error) {
	x := &explainer{cfg: cfg, now: now, fetchers: map[string]*jwks.Fetcher{}}
	for name, spec := range cfg.FetchedKeys {
		j := cfg.Verifier.Hosts[name].JWT
		f, err := jwks.New(spec, jwks.Options{Parse: j.ParseKeySet})
		if err != nil {
			return nil, fmt.Errorf("hosts.%q.jwt: %w", name, err)
		}
		j.Keys, x.fetchers[name] = f, f
	}
	var err error
	x.v, err = x.verifier(cfg.Verifier.Hosts)
	return x, err
}

// fetchKeys fetches, once, the keys of host if they are fetched and token
// is a JWT, and says so.
func (x *explainer) fetchKeys(ctx context.Context, out *lines, host, token string) {
	f := x.fetchers[host]
	if f == nil || !verifier.IsCompactJWS(token) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*jwks.FetchTimeout)
	defer cancel()
	err := f.FetchOnce(ctx)
	f.Stop()
	if err != nil {
		out.say("  keys: host %q's keys are fetched from %s, and this fetch failed: %v", host, x.cfg.FetchedKeys[host].Where(), err)
		out.say("  (the daemon may still hold a set it fetched before, for keys_max_stale after its last successful fetch)")
		return
	}
	out.say("  keys: fetched from %s: kids %s", x.cfg.FetchedKeys[host].Where(), strings.Join(f.Status().Kids, ", "))
}

func (x *explainer) verifier(hosts map[string]verifier.Host) (*verifier.Offline, error) {
	return verifier.NewOffline(verifier.Config{
		Params: x.cfg.Verifier.Params,
		Hosts:  hosts,
		Now: func() time.Time {
			x.clockReads++
			return x.now
		},
	})
}

// explain returns the lines to print and whether the token would be
// accepted. Each verdict has a method of its own (verdicts.go).
func (x *explainer) explain(ctx context.Context, user, host, token, socket string) ([]string, bool) {
	q := query{user: user, host: host, token: token, socket: socket}
	out, ok := x.verdict(ctx, q)
	if line := x.isUser(ctx, q); line != "" {
		out = append(out, line)
	}
	return out, ok
}

// verdict returns the lines of the token's verdict and whether it would
// be accepted.
func (x *explainer) verdict(ctx context.Context, q query) ([]string, bool) {
	user, host, token := q.user, q.host, q.token
	var out lines
	x.fetchKeys(ctx, &out, host, token)
	r := x.v.Explain(ctx, user, host, token)
	if r.JWT {
		q.jwt = true
		return x.jwt(ctx, out, q, r)
	}
	switch r.Reason {
	case verifier.Malformed:
		x.malformed(&out, q, r)
	case verifier.UnknownHost:
		x.unknownHost(&out, q)
	case verifier.OTPOutOfWindow:
		x.outOfWindow(ctx, &out, q, r)
	case verifier.BadSignature:
		x.badSignature(ctx, &out, q, r)
	default: // every check passed: the replay store decides
		x.passed(&out, r)
		return x.replayStatus(ctx, q, r.Offset, out)
	}
	return out, false
}

// query is the token explain is asked about, and the daemon to ask.
type query struct {
	user, host, token string
	socket            string // "" when no daemon is to be asked
	jwt               bool   // the token is a JWT
}

func (q query) jid() string { return q.user + "@" + q.host }

// lines are what explain prints.
type lines []string

func (l *lines) say(format string, a ...any) { *l = append(*l, fmt.Sprintf(format, a...)) }
