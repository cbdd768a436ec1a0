package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/httpapi"
	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/internal/seen"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/replay"
)

// Daemon is one serving process, serve's daemon on its sockets or the
// stdin/stdout helper, and the one owner of what it serves with, as an
// http.Server owns its connections: the configuration in effect, the
// logger and its level, the replay store, the users seen logging in
// (seen.go, for isuser = "seen"), the verifier (in its request handler,
// auth.go), the fetchers of JWT keys, the metrics, the refusal
// log's rate limit, and serve's listening sockets, metrics listener and
// HTTP API. New builds all of it, Run serves (the helper: serveStream),
// Reload puts a new configuration in effect, and the end of serving
// closes it all. Its parts are handed what they use when New makes them;
// nothing sets them from outside afterwards.
type Daemon struct {
	log     *slog.Logger
	level   *slog.LevelVar // the log level a reload sets; nil: none
	load    config.Options // how Reload loads the file again
	store   replay.Store
	seen    *seen.Book // the users seen logging in (isuser = "seen")
	keys    *keySources
	metrics *metrics // nil: none
	refusal *logs.RateLog
	handler *authHandler

	// serve's; the helper has none of them.
	listeners      []net.Listener
	metricsL       net.Listener // nil: no [metrics] listen
	api            *httpapi.Server
	apiL           net.Listener // nil: no [http] listen
	maxConns       int
	requestTimeout time.Duration
	// notify sends a state to the service manager (sd_notify). It is a
	// no-op when not run by systemd.
	notify func(state string)

	reloadMu sync.Mutex
	cfg      *setup.Config // the configuration in effect
	closed   bool          // the daemon has stopped: no more reloads

	mu      sync.Mutex
	conns   map[*guardedConn]struct{}
	probes  map[string]struct{} // addresses the watchdog probe dials from
	closing bool
	wg      sync.WaitGroup
}

// Options are what New takes besides the configuration.
type Options struct {
	// Log is the daemon's logger (nil: none).
	Log *slog.Logger
	// Level, if not nil, is the log level: Reload sets it from [log]
	// level.
	Level *slog.LevelVar
	// Load are the options Reload loads the configuration file (cfg.Path)
	// with.
	Load config.Options
	// Store, if not nil, is the replay store; else New opens the one the
	// configuration names. Either way the daemon owns it from New on, and
	// closes it.
	Store replay.Store
	// Socket, if not "", is where serve listens instead of the
	// configuration's [daemon] socket (-socket); the configuration in
	// effect keeps the file's, so that a reload compares file with file.
	Socket string
	// Helper makes the stdin/stdout helper: no sockets, metrics or HTTP
	// API, and a memory store where the configuration names a journal (a
	// journal has one writer, serve).
	Helper bool
}

// New builds the daemon of cfg: it opens the replay store, builds the
// verifier on it (its hosts' key fetchers started), and for serve listens
// on its sockets, the metrics address and the HTTP API's, so that
// configuration and bind errors show at start-up, before the service
// manager is told the daemon is ready. If New fails it has closed all it
// opened, store included; its error says what failed (a serving command
// logs it with logStartError).
func New(cfg *setup.Config, o Options) (*Daemon, error) {
	d := &Daemon{
		log: o.Log, level: o.Level, load: o.Load, store: o.Store, cfg: cfg,
		maxConns: cfg.MaxConnections, requestTimeout: cfg.RequestTimeout,
		conns: map[*guardedConn]struct{}{}, probes: map[string]struct{}{},
		notify: func(state string) {
			sddaemon.SdNotify(false, state) // not being under systemd is normal
		},
	}
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d.keys = newKeySources(d.log)
	built := false
	defer func() {
		if !built {
			d.closeParts()
		}
	}()
	if d.store == nil {
		store, err := newStore(cfg, d.log, !o.Helper)
		if err != nil {
			return nil, &startError{"cannot open the replay store", err}
		}
		d.store = store
	}
	sb, err := openSeen(cfg, d.log, !o.Helper, d.store)
	if err != nil {
		return nil, &startError{"cannot open the seen users' store", err}
	}
	d.seen = sb
	v, err := d.keys.verifier(cfg, d.store)
	if err != nil {
		if o.Helper {
			return nil, &startError{"bad configuration", err}
		}
		return nil, &startError{"cannot start", err}
	}
	if !o.Helper && cfg.MetricsListen != "" {
		d.metrics = newMetrics(d.store)
		d.metrics.watchSeen(d.seen)
	}
	d.refusal = logs.NewRateLog(d.log, nil)
	d.handler = newAuthHandler(v, d.log, d.refusal, d.metrics, d.seen)
	if !o.Helper {
		if err := d.listen(cfg, o.Socket); err != nil {
			return nil, err
		}
	}
	built = true
	return d, nil
}

// listen opens serve's listeners: its sockets (at socket if not "", else
// the configuration's), the metrics address, the HTTP API's.
func (d *Daemon) listen(cfg *setup.Config, socket string) error {
	if socket == "" {
		socket = cfg.Socket
	}
	var err error
	if d.listeners, err = listen(socket, cfg.SocketGroup, d.log); err != nil {
		return &startError{"cannot start", err}
	}
	if d.metrics != nil {
		if d.metricsL, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			return &startError{"cannot listen for metrics", err}
		}
		d.log.Info("metrics", "url", "http://"+d.metricsL.Addr().String()+"/metrics")
	}
	if d.api, d.apiL, err = newHTTP(cfg.Config, d.handler, d.metrics, d.log); err != nil {
		return &startError{"cannot serve HTTP", err}
	}
	return nil
}

// startError is why New failed, and the message a serving command logs it
// with.
type startError struct {
	msg string
	err error
}

func (e *startError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// logStartError logs why New failed.
func logStartError(log *slog.Logger, err error) {
	var se *startError
	if errors.As(err, &se) {
		log.Error(se.msg, "err", se.err)
		return
	}
	log.Error("cannot start", "err", err)
}

// current returns the configuration in effect.
func (d *Daemon) current() *setup.Config {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	return d.cfg
}

// close ends the daemon once it has served: no reload after it, the key
// fetchers stopped and the store closed (flushing what it must keep). The
// refusals still held back are logged as serving ends (Run, serveStream).
func (d *Daemon) close() error {
	d.reloadMu.Lock()
	d.closed = true
	d.reloadMu.Unlock()
	d.keys.close()
	serr := d.seen.Close()
	if err := d.store.Close(); err != nil {
		return fmt.Errorf("closing the replay store: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("closing the seen users' store: %w", serr)
	}
	return nil
}

// closeParts closes what a New that fails had opened.
func (d *Daemon) closeParts() {
	for _, l := range append(d.listeners, d.metricsL, d.apiL) {
		if l != nil {
			l.Close()
		}
	}
	d.keys.close()
	if d.seen != nil {
		d.seen.Close()
	}
	if d.store != nil {
		d.store.Close()
	}
}
