package explain

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
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
	cfg, err := config.Load(config.Path(*cfgFlag, e.Var))
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
	lines, ok := x.explain(ctx, user, host, token, explainSocket(cfg, *socket))
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

// explainer checks one token against a configuration, on an empty store of
// its own: nothing is recorded anywhere.
type explainer struct {
	cfg *config.Config
	now time.Time
	v   *verifier.Verifier
	// asOf says what time the verdict is for: "" for now, else why the
	// daemon is not asked.
	asOf string
	// clockReads counts the verifiers' reads of the clock: one per check,
	// one more per search for an OTP outside the window.
	clockReads int
}

func newExplainer(cfg *config.Config, now time.Time) (*explainer, error) {
	x := &explainer{cfg: cfg, now: now}
	var err error
	x.v, err = x.verifier(cfg.Hosts)
	return x, err
}

func (x *explainer) verifier(hosts map[string]verifier.Host) (*verifier.Verifier, error) {
	return verifier.New(verifier.Config{
		Params: x.cfg.Params,
		Hosts:  hosts,
		Store:  replay.NewMemory(replay.MemoryOptions{Capacity: 1, TTL: time.Second}),
		Now: func() time.Time {
			x.clockReads++
			return x.now
		},
	})
}

// explain returns the lines to print and whether the token would be
// accepted.
func (x *explainer) explain(ctx context.Context, user, host, token, socket string) ([]string, bool) {
	jid := user + "@" + host
	r := x.v.Explain(ctx, user, host, token)
	var out []string
	say := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	p := x.cfg.Params
	step := int(p.Interval / time.Second)

	switch r.Reason {
	case verifier.Malformed:
		say("%s: refused: malformed", jid)
		var pe *verifier.ParseError
		if errors.As(r.Err, &pe) {
			say("  at byte %d of the token: %s", pe.Offset, pe.Msg)
			say("  a token is %d digits of one-time password, the nonce digits, one space, then the base64 of a %d-byte signature",
				p.Digits, verifier.SignatureSize)
		} else {
			say("  %s", verifier.Detail(r.Err))
		}
		return out, false

	case verifier.UnknownHost:
		say("%s: refused: unknown_host", jid)
		say("  host %q is not configured; configured: %s", host, strings.Join(x.hostNames(), ", "))
		return out, false

	case verifier.OTPOutOfWindow:
		say("%s: refused: otp_out_of_window", jid)
		if r.Far {
			say("  the one-time password is not %s's for any time within a day of now:", host)
			say("  the application uses another otp_seed (or other digits or interval)")
			for _, other := range x.otherHostsWithOTP(ctx, user, host, token) {
				say("  it is the one-time password of host %q's otp_seed: the application mixes up hosts", other)
			}
			return out, false
		}
		say("  the one-time password is %s's for step %+d (%s); accepted: steps -%d to +%d",
			seedName(r.Seed), r.Offset, skew(r.Offset, step), p.Drift, p.Drift)
		if r.Offset < 0 {
			say("  the token was minted %d s before now: it was used late, or the application's clock is behind this host's", -r.Offset*step)
		} else {
			say("  the token was minted %d s after now: the application's clock is ahead of this host's", r.Offset*step)
		}
		return out, false

	case verifier.BadSignature:
		say("%s: refused: bad_signature", jid)
		say("  one-time password: fine (%s, step %+d)", seedName(r.Seed), r.Offset)
		h := x.cfg.Hosts[host]
		say("  the signature matches neither token_secret nor any of the %d old_token_secrets of %q",
			len(h.TokenSecrets)-1, host)
		hints := x.otherSigners(ctx, user, host, token)
		for _, hint := range hints {
			say("  %s", hint)
		}
		if len(hints) == 0 {
			say("  it matches no other configured host or secret either: the application signs with another secret, or for another user name (the signature covers the exact user@host, as the server passes it: lower case)")
		}
		return out, false
	}

	// Accepted by the checks: signature and window are right.
	say("  one-time password: %s, step %+d (%s); accepted: steps -%d to +%d", seedName(r.Seed), r.Offset, skew(r.Offset, step), p.Drift, p.Drift)
	if r.Secret > 0 {
		say("  signature: old_token_secrets[%d]: the application still signs with an old secret", r.Secret-1)
	} else {
		say("  signature: token_secret (the current one)")
	}
	if r.Seed > 0 {
		say("  the application still uses an old otp_seed")
	}
	return x.replayStatus(ctx, user, host, token, socket, r.Offset, out)
}

// replayStatus asks the daemon whether a token that passes every check was
// already used, and returns the lines to print (the checks' lines in out
// first) and whether the token would be accepted.
func (x *explainer) replayStatus(ctx context.Context, user, host, token, socket string, offset int, out []string) ([]string, bool) {
	jid := user + "@" + host
	unknown := func(why string) ([]string, bool) {
		out = append([]string{jid + ": accepted (if not already used)"}, out...)
		out = append(out, "  replay: "+why)
		return out, true
	}
	if x.asOf != "" {
		return unknown("not checked: " + x.asOf)
	}
	if socket == "" {
		return unknown("not checked (give -socket to ask the daemon whether it was already used)")
	}
	seen, err := protocol.Query(ctx, "unix", socket, protocol.Generic, protocol.Request{Command: protocol.CmdSeen, User: user, Server: host, Password: token})
	if err != nil {
		return unknown(fmt.Sprintf("unknown: could not ask the daemon: %v", err))
	}
	if seen {
		out = append([]string{jid + ": refused: replayed"}, out...)
		out = append(out, "  replay: the daemon has already accepted this token once: it is never accepted again")
		return out, false
	}
	unused, err := protocol.Query(ctx, "unix", socket, protocol.Generic, protocol.Request{Command: protocol.CmdUnused, User: user, Server: host, Password: token})
	if err != nil {
		return unknown(fmt.Sprintf("unknown: could not ask the daemon: %v", err))
	}
	if !unused {
		return x.notUnused(ctx, socket, user, host, offset, out, unknown)
	}
	out = append([]string{jid + ": accepted"}, out...)
	out = append(out, "  replay: not used yet, says the daemon (explain did not record it)")
	return out, true
}

// notUnused explains a token the daemon calls neither seen nor unused:
// its replay store did not answer or may have lost records, the token is
// outside the window on its clock, or its configuration differs from this
// file. Which steps of the window the daemon refuses tells a loss of
// records apart, and until when it refuses.
func (x *explainer) notUnused(ctx context.Context, socket, user, host string, offset int, out []string,
	unknown func(string) ([]string, bool)) ([]string, bool) {
	p := x.cfg.Params
	first, err := x.firstUnusedStep(ctx, socket, user, host)
	if err != nil {
		return unknown(fmt.Sprintf("unknown: could not ask the daemon: %v", err))
	}
	iv := int64(p.Interval / time.Second)
	ends := time.Unix((x.now.Unix()/iv+int64(first))*iv, 0)
	when := fmt.Sprintf("%s (in %d s)", ends.Format(time.RFC3339), int(ends.Sub(x.now).Round(time.Second)/time.Second))
	switch {
	case first > p.Drift: // it refuses every step
		return unknown("unknown: the daemon cannot tell, and calls no token of the window unused: its replay store is unavailable, or it may have lost records during this step (a restarted Redis, a lost journal, a start with refuse_after_start; tokens minted from " +
			when + " are then accepted again), or it runs another configuration; see its log")
	case first > -p.Drift && offset < first:
		out = append([]string{user + "@" + host + ": refused: store_forgot"}, out...)
		out = append(out, "  replay: the daemon's replay store may have lost records (a restarted Redis, a lost journal, a start with refuse_after_start: see its log) when this token could already have been accepted: it is never accepted",
			"  the daemon accepts again the tokens minted from "+when)
		return out, false
	}
	return unknown("unknown: the daemon cannot tell (its replay store is unavailable, the token is outside the window on the daemon's clock, or the daemon runs another configuration)")
}

// firstUnusedStep asks the daemon about a token it has never seen, minted
// for user@host at each step of the window, oldest first, until it calls
// one unused: the offset of that step, drift+1 if none. After its replay
// store lost records the daemon refuses the oldest steps: the first one it
// accepts is when its refusals end. The probes are only asked about
// ("unused" records nothing); they never leave this process and the
// daemon's socket.
func (x *explainer) firstUnusedStep(ctx context.Context, socket, user, host string) (int, error) {
	p := x.cfg.Params
	for off := -p.Drift; off <= p.Drift; off++ {
		tok, err := x.v.Mint(user, host, x.now.Add(time.Duration(off)*p.Interval), "")
		if err != nil {
			return 0, err
		}
		unused, err := protocol.Query(ctx, "unix", socket, protocol.Generic, protocol.Request{Command: protocol.CmdUnused, User: user, Server: host, Password: tok})
		if err != nil {
			return 0, err
		}
		if unused {
			return off, nil
		}
	}
	return p.Drift + 1, nil
}

func seedName(i int) string {
	if i > 0 {
		return fmt.Sprintf("old_otp_seeds[%d]", i-1)
	}
	return "otp_seed"
}

// skew describes a step offset in seconds.
func skew(off, step int) string {
	switch {
	case off == 0:
		return "the current step"
	case off < 0:
		return fmt.Sprintf("%d s in the past", -off*step)
	}
	return fmt.Sprintf("%d s in the future", off*step)
}

func (x *explainer) hostNames() []string {
	names := slices.Sorted(maps.Keys(x.cfg.Hosts))
	return names
}

// otherHostsWithOTP lists the other hosts whose seeds give the token's OTP
// inside the window. These probes, and otherSigners', use Check: Explain
// would add its day-wide OTP search (thousands of HMACs) for every host.
func (x *explainer) otherHostsWithOTP(ctx context.Context, user, host, token string) []string {
	var found []string
	for _, other := range x.hostNames() {
		if other == host {
			continue
		}
		o := x.cfg.Hosts[other]
		v, err := x.verifier(map[string]verifier.Host{host: {TokenSecrets: o.TokenSecrets, OTPSeeds: o.OTPSeeds}})
		if err != nil {
			continue
		}
		if r := v.Check(ctx, user, host, token); r.Reason != verifier.OTPOutOfWindow {
			found = append(found, other)
		}
	}
	return found
}

// otherSigners explains a bad signature by the other hosts: a token minted
// for user@other, or signed with other's secret.
func (x *explainer) otherSigners(ctx context.Context, user, host, token string) []string {
	var hints []string
	// The server passes the user name nodeprepped (lower case); an
	// application that signs the name as typed signs another string.
	for _, other := range []string{strings.ToUpper(user[:1]) + user[1:], strings.ToUpper(user)} {
		if other == user {
			continue
		}
		if r := x.v.Check(ctx, other, host, token); r.Reason == verifier.Accepted || r.Reason == verifier.Replayed {
			hints = append(hints, fmt.Sprintf("it is signed for the user name %q: the application must sign the name as the server passes it, %q (lower case)", other, user))
			break
		}
	}
	self := x.cfg.Hosts[host]
	for _, other := range x.hostNames() {
		if other == host {
			continue
		}
		if r := x.v.Check(ctx, user, other, token); r.Reason == verifier.Accepted || r.Reason == verifier.Replayed {
			hints = append(hints, fmt.Sprintf("it is a token for %s@%s: the application minted it for host %q", user, other, other))
			continue
		}
		o := x.cfg.Hosts[other]
		v, err := x.verifier(map[string]verifier.Host{host: {TokenSecrets: o.TokenSecrets, OTPSeeds: self.OTPSeeds}})
		if err != nil {
			continue
		}
		if r := v.Check(ctx, user, host, token); r.Reason == verifier.Accepted {
			which := "token_secret"
			if r.Secret > 0 {
				which = fmt.Sprintf("old_token_secrets[%d]", r.Secret-1)
			}
			hints = append(hints, fmt.Sprintf("it is signed with the %s of host %q: the application uses the wrong host's secret", which, other))
		}
	}
	return hints
}
