package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tokenauthd/tokenauthd/protocol"
)

// defaultRelayTimeout bounds one request through the relay, dialling and
// retrying included: under Prosody's 5 s external_auth_timeout and far under
// ejabberd's 30 s.
const defaultRelayTimeout = 2 * time.Second

// runConnect is `tokenauthd connect`: a stdin/stdout helper for ejabberd's
// extauth_program or Prosody's external_auth_command that hands every
// request to the daemon and its reply back.
func runConnect(ctx context.Context, e *env, args []string) int {
	// As for the stdin/stdout helper: a terminal would echo requests back
	// and act on control bytes.
	if f, ok := e.stdin.(*os.File); ok {
		prepareTerminal(f)
	}
	fs := newFlags(e, "connect", "tokenauthd connect [-config FILE] [-socket PATH] [-timeout D] [-protocol auto|ejabberd|generic]")
	cfgFlag := fs.String("config", "", "configuration file to read [daemon] socket, [connect] timeout_ms and [log] from (default $TOKENAUTHD_CONFIG, else "+defaultConfigPath+"; optional)")
	sockFlag := fs.String("socket", "", "the daemon's Unix socket (default $TOKENAUTHD_SOCKET, else [daemon] socket, else "+defaultSocket+")")
	timeoutFlag := fs.Duration("timeout", 0, "answer 0 to a request the daemon has not answered within this time (default [connect] timeout_ms, else 2s)")
	protoFlag := fs.String("protocol", "auto", "framing on stdin/stdout: auto, ejabberd or generic")
	if code, ok := parseNoArgs(e, fs, args); !ok {
		return code
	}
	// SIGHUP reloads the daemon and the stdin/stdout helpers; the relay has
	// nothing to reload and must not die of it (its default action), as
	// `pkill -HUP -x tokenauthd` reaches it too.
	hup, stopHup := reloadSignals(e)
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
	rs, err := loadRelaySettings(configPath(*cfgFlag), *cfgFlag != "")
	if err != nil {
		newLogger(e).Error("bad configuration", "err", err)
		return 1
	}
	log := slog.New(newLogHandler(e.stderr, rs.logJSON, rs.logLevel))
	mode, err := protocol.ParseMode(*protoFlag)
	if err != nil {
		log.Error("bad -protocol", "err", err)
		return 1
	}
	switch {
	case *sockFlag != "":
		rs.socket = *sockFlag
	case os.Getenv("TOKENAUTHD_SOCKET") != "":
		rs.socket = os.Getenv("TOKENAUTHD_SOCKET")
	}
	if rs.socket, err = socketPath(rs.socket); err != nil {
		log.Error("bad socket", "err", err)
		return 1
	}
	if *timeoutFlag < 0 {
		log.Error("bad -timeout", "err", "must not be negative")
		return 1
	} else if *timeoutFlag > 0 {
		rs.timeout = *timeoutFlag
	}
	r := &relay{socket: rs.socket, timeout: rs.timeout, log: log}
	srv := &protocol.Server{Mode: mode, Handler: r, OnBadRequest: r.badRequest}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, e.stdin, e.stdout); err != nil {
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

// relaySettings are what the relay takes from the configuration file.
type relaySettings struct {
	socket   string
	timeout  time.Duration
	logJSON  bool
	logLevel slog.Level
}

// loadRelaySettings reads the settings the relay needs ([daemon] socket,
// [connect] timeout_ms, [log] format and level), ignoring the rest: the
// relay runs as the XMPP server's user, which need not be able to read the
// daemon's configuration, let alone its secrets. A default file that is
// absent or unreadable gives the defaults; a file named explicitly must be
// readable. A file it reads is held to the daemon's rules (readConfigFile):
// whoever could write it could point the relay at a socket of theirs that
// answers yes to every login.
func loadRelaySettings(path string, explicit bool) (relaySettings, error) {
	rs := relaySettings{socket: defaultSocket, timeout: defaultRelayTimeout, logLevel: slog.LevelInfo}
	var fc struct {
		Daemon struct {
			Socket string `toml:"socket"`
		} `toml:"daemon"`
		Connect struct {
			TimeoutMS int `toml:"timeout_ms"`
		} `toml:"connect"`
		Log struct {
			Format string `toml:"format"`
			Level  string `toml:"level"`
		} `toml:"log"`
	}
	fc.Log.Format, fc.Log.Level = "text", "info"
	data, _, err := readConfigFile(path)
	if err != nil {
		if !explicit && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)) {
			return rs, nil
		}
		return rs, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkNesting(data); err != nil {
		return rs, fmt.Errorf("%s:%w", path, err)
	}
	if _, err := toml.Decode(string(data), &fc); err != nil {
		return rs, tomlError(path, err)
	}
	if fc.Daemon.Socket != "" {
		rs.socket = fc.Daemon.Socket
	}
	if fc.Connect.TimeoutMS != 0 {
		if rs.timeout, err = relayTimeout(fc.Connect.TimeoutMS); err != nil {
			return rs, fmt.Errorf("%s: connect.timeout_ms: %w", path, err)
		}
	}
	if rs.logJSON, rs.logLevel, err = logSettings(fc.Log.Format, fc.Log.Level); err != nil {
		return rs, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

// relayTimeout validates [connect] timeout_ms.
func relayTimeout(ms int) (time.Duration, error) {
	if ms < 10 || ms > 60_000 {
		return 0, fmt.Errorf("must be 10 to 60000, not %d", ms)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// relay is the protocol.Handler of `tokenauthd connect`: it passes each
// request on to the daemon over one Unix socket connection, one at a time,
// and redials whenever that connection fails. The stdin/stdout side (framing,
// malformed requests, flushing) is protocol.Server's, as for every other
// serving command.
type relay struct {
	socket  string
	timeout time.Duration

	log    *slog.Logger
	conn   relayConn
	br     *bufio.Reader
	connOK bool // the last request went through: log the next failure
}

var _ protocol.Handler = (*relay)(nil)

// maxRelayFrame is the longest request passed on: a longer ejabberd frame
// would start with a lowercase letter and, as the first bytes on a
// connection, be taken by the daemon's auto-detection for a line. No
// request that can be answered yes is nearly that long.
const maxRelayFrame = 0x6100 - 1

// Answer implements protocol.Handler: it asks the daemon. Only well-formed
// requests get here, so nothing sent can put the connection out of step.
// They go in ejabberd framing whatever the peer's, as a frame carries any
// body; req gives back the request's exact bytes (ParseRequest splits at
// the first three colons only).
func (r *relay) Answer(_ context.Context, req protocol.Request) bool {
	msg := req.AppendBody(make([]byte, 2, 64))
	n := len(msg) - 2
	if n > maxRelayFrame {
		r.badRequest(protocol.Ejabberd, protocol.ErrTooLarge)
		return false
	}
	msg[0], msg[1] = byte(n>>8), byte(n)
	return r.ask(msg)
}

// badRequest logs a request answered no without asking the daemon.
func (r *relay) badRequest(mode protocol.Mode, err error) {
	r.log.Info("refused", "reason", "bad_request", "protocol", mode.String(), "detail", err.Error())
}

// ask sends one framed request to the daemon and returns its answer.
// Whatever goes wrong within the bound (no daemon, a daemon restarting, a
// broken connection) is retried on a new connection; past the bound the
// answer is no, with a log line.
func (r *relay) ask(msg []byte) bool {
	deadline := time.Now().Add(r.timeout)
	backoff := 20 * time.Millisecond
	var err error
	for {
		var ok bool
		if ok, err = r.try(msg, deadline); err == nil {
			if !r.connOK {
				r.log.Info("connected to the daemon", "socket", r.socket)
				r.connOK = true
			}
			return ok
		}
		r.close()
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		time.Sleep(min(backoff, wait))
		backoff = min(2*backoff, 250*time.Millisecond)
	}
	r.log.Warn("refused", "reason", "daemon_unavailable", "socket", r.socket,
		"timeout", r.timeout.String(), "err", err.Error())
	r.connOK = false
	return false
}

// try makes one attempt at a request: dial if need be, send, read the reply.
func (r *relay) try(msg []byte, deadline time.Time) (bool, error) {
	if r.conn == nil {
		c, err := dialRelay(r.socket, deadline)
		if err != nil {
			return false, err
		}
		r.conn, r.br = c, bufio.NewReaderSize(c, 64)
	}
	if err := r.conn.SetDeadline(deadline); err != nil {
		return false, err
	}
	if _, err := r.conn.Write(msg); err != nil {
		return false, err
	}
	var reply [4]byte
	if _, err := io.ReadFull(r.br, reply[:]); err != nil {
		return false, err
	}
	return replyValue(reply[:])
}

// replyValue reads a daemon's reply: anything but an exact yes or no is an
// error, and the connection is dropped.
func replyValue(b []byte) (bool, error) {
	switch {
	case string(b) == protocol.Reply(protocol.Ejabberd, true):
		return true, nil
	case string(b) == protocol.Reply(protocol.Ejabberd, false):
		return false, nil
	}
	return false, fmt.Errorf("unexpected reply from the daemon (%d bytes)", len(b))
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
		r.conn, r.br = nil, nil
	}
}
