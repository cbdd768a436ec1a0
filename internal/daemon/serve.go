package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// socketMode lets the daemon's user and group, and no one else, connect.
const socketMode = 0o660

// drainTimeout bounds how long a stopping daemon waits for the requests it
// is answering before it closes their connections.
const drainTimeout = 10 * time.Second

// maxDaemonRequest bounds the request the daemon buffers, in either
// framing: a longer frame is read and discarded, a longer line skipped, and
// answered no. No request that can be answered yes comes close: user and
// host are at most 1,023 bytes each in XMPP and a token about 90.
const maxDaemonRequest = protocol.DefaultMaxLine

// RunServe is `tokenauthd serve`: the long-running daemon that answers every
// relay, Prosody module and helper of a host on a Unix socket, with one
// verifier and one replay store for all of them.
func RunServe(ctx context.Context, e *cli.Env, args []string) int {
	fs, cfgFlag := cli.NewConfigFlags(e, "serve", "tokenauthd serve [-config FILE] [-socket PATH]")
	sockFlag := fs.String("socket", "", "Unix socket to listen on (default: [daemon] socket, else "+config.DefaultSocket+"); unused under socket activation")
	if code, ok := cli.ParseNoArgs(e, fs, args); !ok {
		return code
	}
	socket := *sockFlag
	if socket != "" {
		var err error
		if socket, err = config.SocketPath(socket); err != nil {
			e.Logger().Error("bad -socket", "err", err)
			return 1
		}
	}
	reload, stopSignals := e.ReloadSignals()
	defer stopSignals()
	cfg, log, level, ok := loadServing(e, cfgFlag)
	if !ok {
		return 1
	}
	d, err := New(cfg, Options{Log: log, Level: level, Load: cfgFlag.Options(e), Socket: socket})
	if err != nil {
		logStartError(log, err)
		return 1
	}
	defer d.reloadOn(ctx, reload)()
	if err := d.Run(ctx); err != nil {
		log.Error("serve", "err", err)
	}
	return 0
}

// listen returns the sockets systemd passed (socket activation), or else
// a Unix socket of its own at path.
func listen(path, group string, log *slog.Logger) ([]net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	var active []net.Listener
	for _, l := range ls {
		if l != nil { // a passed descriptor that is not a stream socket
			active = append(active, l)
		}
	}
	if len(active) > 0 {
		for _, l := range active {
			log.Info("listening", "socket", l.Addr().String(), "activation", true)
		}
		return active, nil
	}
	l, err := listenUnix(path)
	if err != nil {
		return nil, err
	}
	if group != "" {
		if err := chgrp(path, group); err != nil {
			l.Close()
			return nil, fmt.Errorf("daemon.socket_group: %w", err)
		}
	}
	log.Info("listening", "socket", path, "group", group)
	return []net.Listener{l}, nil
}

// listenUnix listens on a Unix socket at path with mode 0660 (bindUnix
// creates it so, with no chmod that could follow a symlink put in its
// place). A socket file left behind by a daemon that died is replaced; a
// live one is not.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	l, err := bindUnix(path)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		fi, serr := os.Lstat(path)
		if serr != nil || fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, derr := net.DialTimeout("unix", path, time.Second); derr == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another daemon is listening there", path)
		}
		os.Remove(path)
		l, err = bindUnix(path)
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// bindUnix creates the socket file at path and listens on it. The file is
// created under umask 0117, that is with mode socketMode exactly, whatever
// the umask of whoever starts us (umask 0 is a valid setting): no chmod
// follows, which would act on whatever the path names by then.
//
// The umask is the process's, not the goroutine's. bindUnix runs at
// start-up only (New, before the daemon serves or answers a signal),
// when no goroutine of ours creates files: the journal's syncer only syncs
// open files and Redis's pool only dials. A socket created in a private
// directory and moved into place would not touch the umask, but the
// listener would then report, and on close remove, the wrong path.
func bindUnix(path string) (net.Listener, error) {
	old := syscall.Umask(0o777 &^ socketMode)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}

// chgrp gives the socket at path to the group named group (or numbered,
// if a number), so that the XMPP server's user, a member, can connect. It
// never follows a symlink (Lchown) and refuses a path that is no socket:
// whoever could swap the path for a link must not get a file of their
// choosing given to the group.
func chgrp(path, group string) error {
	gid, err := strconv.Atoi(group)
	if err != nil {
		g, lerr := user.LookupGroup(group)
		if lerr != nil {
			return lerr
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return err
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s is no longer a socket", path)
	}
	return os.Lchown(path, -1, gid)
}

// Start runs the daemon in the background until ctx ends or stop is
// called; stop waits for Run to return and returns its error.
func (d *Daemon) Start(ctx context.Context) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
}

// Run serves until ctx is done, then stops accepting, answers the requests
// in flight, stops the HTTP API, closes the daemon (close: the store
// flushes what it must keep) and returns. It is called once.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.refusal.Flush()
	// Requests in flight are answered even while stopping: their context
	// outlives ctx and is cancelled only when the drain times out.
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()

	var accepting sync.WaitGroup
	for _, l := range d.listeners {
		accepting.Add(1)
		go func() {
			defer accepting.Done()
			d.accept(reqCtx, l)
		}()
	}
	if d.metricsL != nil {
		serveMetrics(ctx, d.metricsL, d.metrics, d.log)
	}
	stopHTTP := func() {}
	if d.api != nil {
		stopHTTP = d.api.Start(ctx, d.apiL)
	}
	cfg := d.current()
	d.log.Info("tokenauthd serving", "version", cli.Version(), "hosts", len(cfg.Hosts))
	logWarnings(d.log, cfg)
	d.notify(sddaemon.SdNotifyReady)
	stopWatchdog := d.watchdog()

	<-ctx.Done()
	d.notify(sddaemon.SdNotifyStopping)
	stopWatchdog()
	d.log.Info("stopping: answering the requests in flight")
	d.mu.Lock()
	d.closing = true
	for _, l := range d.listeners {
		l.Close()
	}
	// A blocked read returns at once; a request being answered is
	// answered, then its connection's next read fails and it closes.
	for g := range d.conns {
		g.stop()
	}
	d.mu.Unlock()
	accepting.Wait()

	drained := make(chan struct{})
	go func() { d.wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		d.log.Warn("requests still in flight after the drain timeout: closing their connections")
		cancelReqs()
		d.mu.Lock()
		for g := range d.conns {
			g.c.Close()
		}
		d.mu.Unlock()
		<-drained
	}
	stopHTTP()
	if err := d.close(); err != nil {
		return err
	}
	d.log.Info("stopped")
	return nil
}

// accept serves every connection of l until l is closed.
func (d *Daemon) accept(ctx context.Context, l net.Listener) {
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and go on.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			d.log.Warn("accept", "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		probe := d.isProbe(c)
		g, full := d.track(c, probe)
		if g == nil {
			c.Close()
			if full {
				d.metrics.event(connectionRefused)
				d.refusal.Log(slog.LevelWarn, "max_connections", "connection refused",
					"max_connections", d.maxConns)
			}
			continue
		}
		go d.serveConn(ctx, g, probe)
	}
}

// track registers a new connection, unless the daemon is stopping or
// max_connections are open (full); the watchdog's probe is let in all the
// same, so that a daemon at its limit is not taken for a hung one.
func (d *Daemon) track(c net.Conn, probe bool) (g *guardedConn, full bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return nil, false
	}
	if !probe && len(d.conns) >= d.maxConns {
		return nil, true
	}
	g = &guardedConn{c: c, timeout: d.requestTimeout}
	d.conns[g] = struct{}{}
	d.wg.Add(1)
	d.metrics.event(connectionOpened)
	return g, false
}

// serveConn answers one connection's requests, in its own framing, until
// the peer closes it, a request takes longer than request_timeout_ms to
// arrive, or the daemon stops.
func (d *Daemon) serveConn(ctx context.Context, g *guardedConn, probe bool) {
	defer func() {
		g.c.Close()
		d.mu.Lock()
		delete(d.conns, g)
		d.mu.Unlock()
		d.metrics.event(connectionClosed)
		d.wg.Done()
	}()
	var h protocol.Handler = d.handler
	if probe {
		// The daemon asking itself is no request: answered, not counted.
		h = protocol.HandlerFunc(func(ctx context.Context, req protocol.Request) bool {
			ok, _ := d.handler.answer(ctx, req)
			return ok
		})
	}
	srv := newProtocolServer(protocol.Auto, h, d.log)
	srv.MaxLine, srv.MaxFrame = maxDaemonRequest, maxDaemonRequest
	srv.OnRequestStart, srv.OnRequestRead = g.requestStarted, g.requestRead
	err := srv.Serve(ctx, g, g.c)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrDeadlineExceeded):
		if !g.stopped() {
			d.metrics.event(requestTimeout)
			d.refusal.Log(slog.LevelInfo, "request_timeout", "connection closed: a request took too long to arrive",
				"timeout", d.requestTimeout.String())
		}
	default:
		d.log.Debug("connection ended", "err", err)
	}
}

// guardedConn is a daemon connection with its request deadline: a request
// whose first byte has arrived must arrive whole within timeout, while an
// idle connection between requests (as relays and the Prosody module keep)
// stays open. The deadline is a read deadline, set lazily: only when the
// protocol server must read again before the request is whole (Read
// between requestStarted and requestRead), and cleared when the request
// is read. A request that arrives in one read, as clients write them,
// costs no deadline at all: arming and clearing a timer per request made
// the runtime wake an idle thread twice per request. The deadline then
// runs from the first wait for the rest of a request, at most the time to
// answer the requests read before it later than its first byte. Once the
// daemon stops the connection (stop, a deadline in the past), neither
// touches it again.
type guardedConn struct {
	c       net.Conn
	timeout time.Duration

	// The serving goroutine's own: no lock.
	inRequest bool // between requestStarted and requestRead
	armed     bool // the read deadline is set

	mu       sync.Mutex
	stopping bool
}

// Read reads from the connection, arming the request deadline first if a
// request has started and this is the first wait for its rest.
func (g *guardedConn) Read(p []byte) (int, error) {
	if g.inRequest && !g.armed {
		g.setDeadline(time.Now().Add(g.timeout))
		g.armed = true
	}
	return g.c.Read(p)
}

// requestStarted is the protocol.Server's OnRequestStart.
func (g *guardedConn) requestStarted() { g.inRequest = true }

// requestRead is the protocol.Server's OnRequestRead.
func (g *guardedConn) requestRead() {
	g.inRequest = false
	if g.armed {
		g.setDeadline(time.Time{})
		g.armed = false
	}
}

// setDeadline sets the read deadline, unless the daemon has stopped the
// connection.
func (g *guardedConn) setDeadline(t time.Time) {
	g.mu.Lock()
	if !g.stopping {
		g.c.SetReadDeadline(t)
	}
	g.mu.Unlock()
}

// stop makes a blocked read return at once, and every later one fail.
func (g *guardedConn) stop() {
	g.mu.Lock()
	g.stopping = true
	g.c.SetReadDeadline(time.Now())
	g.mu.Unlock()
}

// stopped reports whether stop was called.
func (g *guardedConn) stopped() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopping
}

// watchdog pings the service manager at half the unit's WatchdogSec, if it
// set one, and returns the function that stops it. Each ping follows a
// probe: an isuser request through every listening socket, answered within
// a quarter of the interval. A daemon that no longer accepts or answers
// stops pinging, and systemd restarts it. The probe does not touch the
// replay store: a Redis outage is not a reason to restart.
func (d *Daemon) watchdog() (stop func()) {
	every, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every / 2)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := d.probe(every / 4); err != nil {
					d.log.Error("watchdog: the daemon does not answer itself; not telling systemd it is alive", "err", err)
					continue
				}
				d.notify(sddaemon.SdNotifyWatchdog)
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}

// probeAddr returns an address for the probe to dial from, that serveConn
// recognises (isProbe), so that the probe is not counted as a request: on
// Linux, a random name in the abstract namespace, registered until the
// connection is accepted. Elsewhere (no abstract names) it returns nil and
// the probe is counted like any request. The name cannot be taken in
// advance (it is random) nor while in use (it is bound), so no peer can
// pass for the probe.
func (d *Daemon) probeAddr() *net.UnixAddr {
	if runtime.GOOS != "linux" {
		return nil
	}
	var b [16]byte
	rand.Read(b[:])
	name := "@tokenauthd-watchdog-" + hex.EncodeToString(b[:])
	d.mu.Lock()
	d.probes[name] = struct{}{}
	d.mu.Unlock()
	return &net.UnixAddr{Name: name, Net: "unix"}
}

// isProbe reports whether c is the watchdog probe's connection, and then
// forgets its address.
func (d *Daemon) isProbe(c net.Conn) bool {
	a, ok := c.RemoteAddr().(*net.UnixAddr)
	if !ok || a == nil || a.Name == "" {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok = d.probes[a.Name]
	delete(d.probes, a.Name)
	return ok
}

// probe asks isuser through each Unix listener, within timeout.
func (d *Daemon) probe(timeout time.Duration) error {
	for _, l := range d.listeners {
		addr := l.Addr()
		if addr.Network() != "unix" {
			continue
		}
		if err := d.probeOne(addr.String(), timeout); err != nil {
			return fmt.Errorf("%s: %w", addr, err)
		}
	}
	return nil
}

// probeOne asks isuser on the Unix socket at path, within timeout.
func (d *Daemon) probeOne(path string, timeout time.Duration) error {
	dialer := net.Dialer{Timeout: timeout}
	if la := d.probeAddr(); la != nil {
		dialer.LocalAddr = la
		defer func() {
			d.mu.Lock()
			delete(d.probes, la.Name)
			d.mu.Unlock()
		}()
	}
	c, err := dialer.Dial("unix", path)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	// Any answer, yes or no, shows the daemon answering.
	_, err = protocol.NewConn(c, protocol.Generic).Ask(protocol.Request{
		Command: protocol.CmdIsUser, User: "watchdog", Server: "watchdog.invalid"})
	return err
}
