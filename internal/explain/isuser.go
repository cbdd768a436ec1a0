package explain

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenauthd/tokenauthd/protocol"
)

// isUser returns the line that says what the daemon answers when the
// server asks whether the token's user exists (messages to a user who is
// offline are kept only for one who does), "" for an unknown host. For a
// host with isuser = "seen" it asks the daemon's isuser, which records
// nothing.
func (x *explainer) isUser(ctx context.Context, q query) string {
	h, ok := x.cfg.Verifier.Hosts[q.host]
	switch {
	case !ok:
		return ""
	case h.SeenFor <= 0 && h.IsUser:
		return "  isuser: true: every name on " + q.host + " exists (messages to it while offline are kept)"
	case h.SeenFor <= 0:
		return "  isuser: false: no name on " + q.host + " exists (messages to it while offline bounce)"
	}
	days := int(h.SeenFor / (24 * time.Hour))
	switch {
	case x.asOf != "":
		return fmt.Sprintf("  isuser: \"seen\": %s exists if a login of it was accepted within %d days (the daemon not asked: %s)", q.jid(), days, x.asOf)
	case q.socket == "":
		return fmt.Sprintf("  isuser: \"seen\": %s exists if a login of it was accepted within %d days (give -socket to ask the daemon)", q.jid(), days)
	}
	known, err := protocol.Query(ctx, "unix", q.socket, protocol.Generic, protocol.Request{Command: protocol.CmdIsUser, User: q.user, Server: q.host})
	switch {
	case err != nil:
		return fmt.Sprintf("  isuser: \"seen\": unknown: could not ask the daemon: %v", err)
	case known:
		return fmt.Sprintf("  isuser: \"seen\": the daemon knows %s (a login accepted within %d days): messages to it while offline are kept", q.jid(), days)
	}
	return fmt.Sprintf("  isuser: \"seen\": the daemon does not know %s (no login accepted within %d days, or its store of seen users lost them or cannot answer: see its log): "+
		"messages to it while offline bounce (service-unavailable) until a login of it is accepted", q.jid(), days)
}
