package main

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// authHandler answers protocol requests with the verifier. It logs each
// refusal once, with its reason, user and host, and never a password,
// token, nonce or secret. Its verifier can be swapped while it serves
// (configuration reload); every request uses one verifier throughout.
type authHandler struct {
	v   atomic.Pointer[verifier.Verifier]
	log *slog.Logger
}

func newAuthHandler(v *verifier.Verifier, log *slog.Logger) *authHandler {
	a := &authHandler{log: log}
	a.v.Store(v)
	return a
}

var _ protocol.Handler = (*authHandler)(nil)

// Answer implements protocol.Handler.
func (a *authHandler) Answer(ctx context.Context, req protocol.Request) bool {
	v := a.v.Load()
	switch req.Command {
	case protocol.CmdAuth:
		r := v.Verify(ctx, req.User, req.Server, req.Password)
		if r.OK() {
			// Checked first: building the arguments costs allocations on
			// every login even when debug logging is off.
			if a.log.Enabled(ctx, slog.LevelDebug) {
				a.log.Debug("accepted", "user", req.User, "host", req.Server, "step", r.Offset)
			}
			return true
		}
		attrs := []any{"reason", string(r.Reason), "user", req.User, "host", req.Server}
		if r.Err != nil {
			attrs = append(attrs, "detail", r.Err.Error())
		}
		if r.Reason == verifier.StoreUnavailable {
			a.log.Warn("refused", attrs...)
		} else {
			a.log.Info("refused", attrs...)
		}
		return false
	case protocol.CmdIsUser:
		return v.IsUser(req.User, req.Server)
	}
	// Accounts are the application's: tokens cannot be changed, registered
	// or removed here, and certificates are not tokens.
	a.log.Info("refused", "reason", "unsupported_command", "command", req.Command,
		"user", req.User, "host", req.Server)
	return false
}

// newProtocolServer returns a protocol server whose bad requests are logged.
func newProtocolServer(mode protocol.Mode, h protocol.Handler, log *slog.Logger) *protocol.Server {
	return &protocol.Server{
		Mode:    mode,
		Handler: h,
		OnBadRequest: func(m protocol.Mode, err error) {
			log.Info("refused", "reason", "bad_request", "protocol", m.String(), "detail", err.Error())
		},
	}
}
