package daemon

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/internal/seen"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// authHandler is the Daemon's request path: it answers protocol requests
// with the verifier in effect. It logs each refusal once, with its reason,
// user and host, and never a password, token, nonce or secret; refusal
// lines are rate limited per reason (the daemon's one RateLog). The
// Daemon makes it with all it uses and swaps its verifier on a reload
// (setVerifier); every request uses one verifier throughout.
type authHandler struct {
	v       atomic.Pointer[verifier.Verifier]
	log     *slog.Logger
	refusal *logs.RateLog
	metrics *metrics // nil: none
	// seen keeps the users seen logging in, for hosts with isuser =
	// "seen" (nil: none is known, every such isuser is no).
	seen *seen.Book
}

// newAuthHandler returns the handler answering with v, logging to log
// through refusal's rate limit, counting in m (nil: nowhere), keeping the
// users seen logging in in sb (nil: none).
func newAuthHandler(v *verifier.Verifier, log *slog.Logger, refusal *logs.RateLog, m *metrics, sb *seen.Book) *authHandler {
	a := &authHandler{log: log, refusal: refusal, metrics: m, seen: sb}
	a.v.Store(v)
	return a
}

// verifier returns the verifier in effect.
func (a *authHandler) verifier() *verifier.Verifier { return a.v.Load() }

// setVerifier puts v in effect for the next request.
func (a *authHandler) setVerifier(v *verifier.Verifier) { a.v.Store(v) }

var _ protocol.Handler = (*authHandler)(nil)

// Reasons of refusals that do not come from the verifier.
const (
	reasonUnsupported = "unsupported_command"
	reasonBadRequest  = "bad_request"
	reasonNoUser      = "no_such_user"
	// isuser = "seen": the user logged in within seen_for, or not, or the
	// store of seen users could not answer (no).
	reasonSeenUser    = "seen_user"
	reasonNotSeen     = "not_seen"
	reasonSeenUnavail = "seen_unavailable"
)

// Answer implements protocol.Handler.
func (a *authHandler) Answer(ctx context.Context, req protocol.Request) bool {
	if a.metrics == nil {
		ok, _ := a.answer(ctx, req)
		return ok
	}
	start := time.Now()
	ok, reason := a.answer(ctx, req)
	a.metrics.request(req.Command, ok, reason, time.Since(start))
	return ok
}

// answer answers req with the verifier in effect, and says why.
func (a *authHandler) answer(ctx context.Context, req protocol.Request) (bool, string) {
	v := a.v.Load()
	switch req.Command {
	case protocol.CmdAuth:
		return a.auth(ctx, v, req)
	case protocol.CmdIsUser:
		return a.isUser(ctx, v, req)
	case protocol.CmdSeen:
		// Only a token with a valid signature inside its window can be
		// "seen": this reveals nothing that auth would not. Check, not
		// Explain: its costly search must not be a socket's to trigger.
		r := v.Check(ctx, req.User, req.Server, req.Password)
		a.log.Debug("replay status asked", "user", req.User, "host", req.Server, "reason", string(r.Reason))
		return r.Reason == verifier.Replayed, string(r.Reason)
	case protocol.CmdUnused:
		// Yes only when every check passes and the store answered that it
		// does not hold the token: no for a store it cannot reach or that
		// may have lost records since the token could be accepted
		// (store_forgot), a token outside the window on this clock, or one
		// it cannot verify. What auth would reveal, without consuming the
		// token.
		r := v.Check(ctx, req.User, req.Server, req.Password)
		a.log.Debug("replay status asked", "user", req.User, "host", req.Server, "reason", string(r.Reason))
		return r.Reason == verifier.Accepted, string(r.Reason)
	}
	// Accounts are the application's: tokens cannot be changed, registered
	// or removed here, and certificates are not tokens.
	a.refusal.Log(slog.LevelInfo, reasonUnsupported, "refused", "command", req.Command,
		"user", req.User, "host", req.Server)
	return false, reasonUnsupported
}

// auth verifies and records a login's token.
func (a *authHandler) auth(ctx context.Context, v *verifier.Verifier, req protocol.Request) (bool, string) {
	r := v.Verify(ctx, req.User, req.Server, req.Password)
	if r.OK() {
		// Checked first: building the arguments costs allocations on
		// every login even when debug logging is off.
		if a.log.Enabled(ctx, slog.LevelDebug) {
			if r.JWT {
				a.log.Debug("accepted", "user", req.User, "host", req.Server, "jwt_key", r.KeyID)
			} else {
				a.log.Debug("accepted", "user", req.User, "host", req.Server, "step", r.Offset,
					"old_seed", r.Seed > 0, "old_secret", r.Secret > 0)
			}
		}
		a.markSeen(ctx, v, req)
		return true, string(r.Reason)
	}
	attrs := []any{"user", req.User, "host", req.Server}
	if r.JWT {
		attrs = append(attrs, "jwt", true)
	}
	if r.Err != nil {
		attrs = append(attrs, "detail", r.Err.Error())
	}
	level := slog.LevelInfo
	switch r.Reason {
	case verifier.StoreUnavailable:
		level = slog.LevelWarn
		a.metrics.event(storeError)
	case verifier.StoreForgot: // detail: since when, and until when
		level = slog.LevelWarn
	case verifier.KeysUnavailable: // every JWT of the host is refused
		level = slog.LevelWarn
	}
	a.refusal.Log(level, string(r.Reason), "refused", attrs...)
	return false, string(r.Reason)
}

// isUser answers whether user@host exists: the host's isuser setting, for
// a name that can be a local part, or for isuser = "seen" whether the user
// logged in within seen_for. Its reasons are the metrics' isuser series
// (requestSeries).
func (a *authHandler) isUser(ctx context.Context, v *verifier.Verifier, req protocol.Request) (bool, string) {
	if seenFor := v.SeenFor(req.Server); seenFor > 0 {
		return a.isSeen(ctx, req, seenFor)
	}
	if v.IsUser(req.User, req.Server) {
		return true, "exists"
	}
	return false, reasonNoUser
}

// markSeen marks the user of an accepted login on a host with isuser =
// "seen". A mark that cannot be written leaves the login accepted: it is
// logged (rate limited) and counted.
func (a *authHandler) markSeen(ctx context.Context, v *verifier.Verifier, req protocol.Request) {
	seenFor := v.SeenFor(req.Server)
	if seenFor <= 0 || a.seen == nil {
		return
	}
	if _, err := a.seen.Login(ctx, req.Server, req.User, seenFor); err != nil {
		a.refusal.Log(slog.LevelWarn, "seen_write_failed", "a seen user's mark could not be written: the user may be unknown to isuser until a later login",
			"user", req.User, "host", req.Server, "detail", err.Error())
	}
}

// isSeen answers isuser on a host with isuser = "seen": yes for a user who
// logged in within seenFor; no otherwise, and when the store of seen
// users cannot answer (logged, rate limited).
func (a *authHandler) isSeen(ctx context.Context, req protocol.Request, seenFor time.Duration) (bool, string) {
	if a.seen == nil {
		return false, reasonNotSeen
	}
	ok, err := a.seen.Known(ctx, req.Server, req.User, seenFor)
	switch {
	case err != nil:
		a.refusal.Log(slog.LevelWarn, reasonSeenUnavail, "isuser answered no: the store of seen users could not answer",
			"user", req.User, "host", req.Server, "detail", err.Error())
		return false, reasonSeenUnavail
	case ok:
		return true, reasonSeenUser
	}
	return false, reasonNotSeen
}

// badRequest logs and counts a request answered no before the handler.
func (a *authHandler) badRequest(m protocol.Mode, err error) {
	a.metrics.count("invalid", false, reasonBadRequest)
	a.refusal.Log(slog.LevelInfo, reasonBadRequest, "refused", "protocol", m.String(), "detail", err.Error())
}

// newProtocolServer returns a protocol server whose bad requests are logged.
func newProtocolServer(mode protocol.Mode, h protocol.Handler, log *slog.Logger) *protocol.Server {
	onBad := func(m protocol.Mode, err error) {
		log.Info("refused", "reason", reasonBadRequest, "protocol", m.String(), "detail", err.Error())
	}
	if a, ok := h.(*authHandler); ok {
		onBad = a.badRequest
	}
	return &protocol.Server{Mode: mode, Handler: h, OnBadRequest: onBad}
}
