package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// Run is `tokenauthd connect`: a stdin/stdout helper for ejabberd's
// extauth_program or Prosody's external_auth_command that hands every
// request to the daemon and its reply back.
func Run(ctx context.Context, e *cli.Env, args []string) int {
	fs := cli.NewFlags(e, "connect", "tokenauthd connect [-config FILE] [-socket PATH] [-timeout D] [-protocol auto|ejabberd|generic]")
	cfgFlag := fs.String("config", "", "configuration file to read [daemon] socket, [connect] timeout_ms and [log] from (default $TOKENAUTHD_CONFIG, else "+config.DefaultPath+"; optional)")
	sockFlag := fs.String("socket", "", "the daemon's Unix socket (default $TOKENAUTHD_SOCKET, else [daemon] socket, else "+config.DefaultSocket+")")
	timeoutFlag := fs.Duration("timeout", 0, "answer 0 to a request the daemon has not answered within this time (default [connect] timeout_ms, else 2s)")
	protoFlag := fs.String("protocol", "auto", "framing on stdin/stdout: auto, ejabberd or generic")
	if code, ok := cli.ParseNoArgs(e, fs, args); !ok {
		return code
	}
	// SIGHUP reloads the daemon and the stdin/stdout helpers; the relay has
	// nothing to reload and must not die of it (its default action), as
	// `pkill -HUP -x tokenauthd` reaches it too.
	hup, stopHup := e.ReloadSignals()
	defer stopHup()
	hctx, stopHupLoop := context.WithCancel(ctx)
	defer stopHupLoop()
	go func() {
		for {
			select {
			case <-hctx.Done():
				return
			case <-hup:
			}
		}
	}()
	rs, err := config.LoadRelay(config.Path(*cfgFlag, e.Var), *cfgFlag != "")
	if err != nil {
		e.Logger().Error("bad configuration", "err", err)
		return 1
	}
	log := slog.New(logs.NewHandler(e.Stderr, rs.LogJSON, rs.LogLevel))
	mode, err := protocol.ParseMode(*protoFlag)
	if err != nil {
		log.Error("bad -protocol", "err", err)
		return 1
	}
	switch {
	case *sockFlag != "":
		rs.Socket = *sockFlag
	case e.Var("TOKENAUTHD_SOCKET") != "":
		rs.Socket = e.Var("TOKENAUTHD_SOCKET")
	}
	if rs.Socket, err = config.SocketPath(rs.Socket); err != nil {
		log.Error("bad socket", "err", err)
		return 1
	}
	if *timeoutFlag < 0 {
		log.Error("bad -timeout", "err", "must not be negative")
		return 1
	} else if *timeoutFlag > 0 {
		rs.Timeout = *timeoutFlag
	}
	r := &relay{socket: rs.Socket, timeout: rs.Timeout, log: log}
	srv := &protocol.Server{Mode: mode, Handler: r, OnBadRequest: r.badRequest}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, e.Stdin, e.Stdout); err != nil {
			log.Warn("stream ended", "err", err)
		}
	}()
	// Only the end of input (or a signal) ends the relay.
	select {
	case <-done:
	case <-ctx.Done():
	}
	return 0
}

// relay is the protocol.Handler of `tokenauthd connect`: it passes each
// request on to the daemon over one Unix socket connection, one at a time
// or, when several reached it together, in one batch, and redials
// whenever that connection fails. The stdin/stdout side (framing,
// malformed requests, flushing) is protocol.Server's, as for every other
// serving command; the daemon's side is protocol.Conn's.
type relay struct {
	socket  string
	timeout time.Duration

	log    *slog.Logger
	conn   *protocol.Conn
	connOK bool // the last request went through: log the next failure
}

var _ protocol.BatchHandler = (*relay)(nil)

// Answer implements protocol.Handler: it asks the daemon. Only well-formed
// requests get here, so nothing sent can put the connection out of step.
// They go in ejabberd framing whatever the peer's, as a frame carries any
// body; req gives back the request's exact bytes (ParseRequest splits at
// the first three colons only).
func (r *relay) Answer(_ context.Context, req protocol.Request) bool {
	return r.ask(req, time.Now().Add(r.timeout))
}

// AnswerBatch implements protocol.BatchHandler: requests that reached the
// relay together go to the daemon together, in one write, with one wait
// for all their replies, within one bound from now. What the batch leaves
// unanswered (a broken connection, a request refused unsent) is asked one
// request at a time, as Answer does, by the same deadline.
func (r *relay) AnswerBatch(_ context.Context, reqs []protocol.Request, oks []bool) {
	deadline := time.Now().Add(r.timeout)
	n := 0
	if len(reqs) > 1 {
		n = r.tryBatch(reqs, oks, deadline)
	}
	for i := n; i < len(reqs); i++ {
		oks[i] = r.ask(reqs[i], deadline)
	}
}

// tryBatch makes one attempt at a batch on the current connection (or a
// new one) and returns how many requests it answered. A connection out of
// step is dropped.
func (r *relay) tryBatch(reqs []protocol.Request, oks []bool, deadline time.Time) int {
	if err := r.ready(deadline); err != nil {
		return 0
	}
	n, err := r.conn.AskBatch(reqs, oks)
	if errors.Is(err, protocol.ErrUnasked) {
		// No answer of the batch can be trusted, and asking again would
		// send its tokens twice: every one is no.
		r.outOfStep()
		clear(oks[:len(reqs)])
		return len(reqs)
	}
	if err != nil && r.conn.Err() != nil {
		r.close()
	}
	if n > 0 && !r.connOK {
		r.log.Info("connected to the daemon", "socket", r.socket)
		r.connOK = true
	}
	return n
}

// badRequest logs a request answered no without asking the daemon.
func (r *relay) badRequest(mode protocol.Mode, err error) {
	r.log.Info("refused", "reason", "bad_request", "protocol", mode.String(), "detail", err.Error())
}

// ask sends one request to the daemon and returns its answer. Whatever
// goes wrong within the bound (no daemon, a daemon restarting, a broken
// connection) is retried on a new connection; past the bound the answer is
// no, with a log line. A request the client side refuses to send (too
// large to frame) is answered no at once; so is one met by a reply nobody
// asked for, which drops the connection: its peer is not to be trusted
// with this request again.
func (r *relay) ask(req protocol.Request, deadline time.Time) bool {
	backoff := 20 * time.Millisecond
	var err, cause error // cause: the last error that is not the bound's
	for {
		var ok bool
		if ok, err = r.try(req, deadline); err == nil {
			if !r.connOK {
				r.log.Info("connected to the daemon", "socket", r.socket)
				r.connOK = true
			}
			return ok
		}
		if r.conn != nil && r.conn.Err() == nil {
			r.badRequest(protocol.Ejabberd, err) // refused unsent
			return false
		}
		if errors.Is(err, protocol.ErrUnasked) {
			r.outOfStep()
			return false
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			cause = err
		}
		r.close()
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		time.Sleep(min(backoff, wait))
		backoff = min(2*backoff, 250*time.Millisecond)
	}
	// The last attempt often only meets the bound: log why the ones
	// before it failed (permission denied, no such file...), which is what
	// the admin can act on.
	if cause != nil {
		err = cause
	}
	r.log.Warn("refused", "reason", "daemon_unavailable", "socket", r.socket,
		"timeout", r.timeout.String(), "err", err.Error())
	r.connOK = false
	return false
}

// outOfStep drops a connection whose peer sent a reply nobody asked for,
// and logs it: what it answered is refused.
func (r *relay) outOfStep() {
	r.close()
	r.log.Error("refused", "reason", "daemon_out_of_step", "socket", r.socket,
		"detail", "the daemon's side sent a reply nobody asked for: connection dropped")
	r.connOK = false
}

// try makes one attempt at a request: dial if need be, send, read the
// reply. A reply that is not exactly yes or no is an error, and the
// connection is dropped.
func (r *relay) try(req protocol.Request, deadline time.Time) (bool, error) {
	if err := r.ready(deadline); err != nil {
		return false, err
	}
	return r.conn.Ask(req)
}

// ready dials the daemon if need be and bounds the connection's reads and
// writes by deadline.
func (r *relay) ready(deadline time.Time) error {
	if r.conn == nil {
		c, err := dialRelay(r.socket, deadline)
		if err != nil {
			return err
		}
		r.conn = protocol.NewConn(c, protocol.Ejabberd)
	}
	if err := r.conn.SetDeadline(deadline); err != nil {
		r.close()
		return err
	}
	return nil
}

// relayConn is the relay's connection to the daemon.
type relayConn interface {
	io.ReadWriteCloser
	SetDeadline(t time.Time) error
}

// close drops the connection to the daemon.
func (r *relay) close() {
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
	}
}
