package explain

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenauthd/tokenauthd/protocol"
)

// replayStatus asks the daemon whether a token that passes every check was
// already used, and returns the lines to print (the checks' lines in out
// first) and whether the token would be accepted.
func (x *explainer) replayStatus(ctx context.Context, q query, offset int, out []string) ([]string, bool) {
	jid := q.jid()
	unknown := func(why string) ([]string, bool) {
		out = append([]string{jid + ": accepted (if not already used)"}, out...)
		out = append(out, "  replay: "+why)
		return out, true
	}
	if x.asOf != "" {
		return unknown("not checked: " + x.asOf)
	}
	if q.socket == "" {
		return unknown("not checked (give -socket to ask the daemon whether it was already used)")
	}
	seen, err := x.ask(ctx, q, protocol.CmdSeen, q.token)
	if err != nil {
		return unknown(fmt.Sprintf("unknown: could not ask the daemon: %v", err))
	}
	if seen {
		out = append([]string{jid + ": refused: replayed"}, out...)
		out = append(out, "  replay: the daemon has already accepted this token once: it is never accepted again")
		return out, false
	}
	unused, err := x.ask(ctx, q, protocol.CmdUnused, q.token)
	if err != nil {
		return unknown(fmt.Sprintf("unknown: could not ask the daemon: %v", err))
	}
	if !unused && q.jwt {
		return unknown("unknown: the daemon calls it neither used nor unused: its replay store is unavailable or may have lost records (see its log), the JWT is outside its validity on the daemon's clock, or the daemon runs another configuration")
	}
	if !unused {
		return x.notUnused(ctx, q, offset, out, unknown)
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
func (x *explainer) notUnused(ctx context.Context, q query, offset int, out []string,
	unknown func(string) ([]string, bool)) ([]string, bool) {
	p := x.cfg.Verifier.Params
	first, err := x.firstUnusedStep(ctx, q)
	if err != nil {
		return unknown(fmt.Sprintf("unknown: could not ask the daemon: %v", err))
	}
	iv := int64(p.Interval / time.Second)
	ends := time.Unix((x.now.Unix()/iv+int64(first))*iv, 0)
	when := fmt.Sprintf("%s (in %d s)", ends.Format(time.RFC3339), int(ends.Sub(x.now).Round(time.Second)/time.Second))
	switch {
	case first > p.Drift: // it refuses every step
		return unknown("unknown: the daemon cannot tell, and calls no token of the window unused: its replay store is unavailable, or it may have lost records during this step (a restarted Redis, a lost journal, a full replay cache, a start with refuse_after_start; tokens minted from " +
			when + " are then accepted again), or it runs another configuration; see its log")
	case first > -p.Drift && offset < first:
		out = append([]string{q.jid() + ": refused: store_forgot"}, out...)
		out = append(out, "  replay: the daemon's replay store may have lost records (a restarted Redis, a lost journal, a full replay cache, a start with refuse_after_start: see its log) when this token could already have been accepted: it is never accepted",
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
func (x *explainer) firstUnusedStep(ctx context.Context, q query) (int, error) {
	p := x.cfg.Verifier.Params
	for off := -p.Drift; off <= p.Drift; off++ {
		tok, err := x.v.Mint(q.user, q.host, x.now.Add(time.Duration(off)*p.Interval), "")
		if err != nil {
			return 0, err
		}
		unused, err := x.ask(ctx, q, protocol.CmdUnused, tok)
		if err != nil {
			return 0, err
		}
		if unused {
			return off, nil
		}
	}
	return p.Drift + 1, nil
}

// ask asks the daemon cmd ("seen" or "unused") about token for q's user
// and host: requests that record nothing.
func (x *explainer) ask(ctx context.Context, q query, cmd, token string) (bool, error) {
	return protocol.Query(ctx, "unix", q.socket, protocol.Generic, protocol.Request{Command: cmd, User: q.user, Server: q.host, Password: token})
}
