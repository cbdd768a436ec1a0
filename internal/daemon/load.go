package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/seen"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/replay"
)

// serving is what a serving command (serve, the stdin/stdout helper) sets
// up before anything else: SIGHUP caught, the configuration loaded, its
// logger.
type serving struct {
	path   string
	opts   config.Options
	cfg    *setup.Config
	log    *slog.Logger
	level  *slog.LevelVar
	reload <-chan os.Signal
	stop   func() // undoes the signal handling
	keys   *keySources
	// seen keeps the users seen logging in (isuser = "seen"); stop closes
	// it.
	seen *seen.Book
	// onReload, if not nil, is handed each reloaded configuration.
	onReload func(*config.Config)
}

// startServing catches SIGHUP (its default action ends the process), then
// loads the configuration of a serving command, sets up its logger,
// listens on socket instead of the configured one if it is not "" (serve's
// -socket), and opens the replay store (daemon: the daemon's; false: a
// helper's). What fails is logged, and ok is false: the command exits 1,
// the only time a serving command exits non-zero.
func startServing(e *cli.Env, flags *cli.ConfigFlags, socket string, daemon bool) (s *serving, store replay.Store, ok bool) {
	s = &serving{path: flags.Path(e), opts: flags.Options(e)}
	s.reload, s.stop = e.ReloadSignals()
	cfg, err := loadConfig(s.path, s.opts)
	if err != nil {
		s.stop()
		e.Logger().Error("bad configuration", "err", err)
		return nil, nil, false
	}
	s.cfg = cfg
	s.log, s.level = e.ConfigLogger(cfg.Config)
	s.keys = newKeySources(s.log)
	stop := s.stop
	s.stop = func() { stop(); s.keys.close() }
	if socket != "" {
		cfg.Socket = socket
	}
	if store, err = newStore(cfg, s.log, daemon); err != nil {
		s.stop()
		s.log.Error("cannot open the replay store", "err", err)
		return nil, nil, false
	}
	if s.seen, err = openSeen(cfg, s.log, daemon, store); err != nil {
		store.Close()
		s.stop()
		s.log.Error("cannot open the seen users' store", "err", err)
		return nil, nil, false
	}
	unhook := s.stop
	s.stop = func() { unhook(); s.seen.Close() }
	return s, store, true
}

// reloadOnSignal reloads the configuration into h on every SIGHUP until
// ctx ends or the returned function is called. m, if not nil, counts the
// reloads.
func (s *serving) reloadOnSignal(ctx context.Context, store replay.Store, h *authHandler, m *metrics) (stop func()) {
	rl := &reloader{path: s.path, opts: s.opts, store: store, handler: h, log: s.log, level: s.level, metrics: m, cur: s.cfg,
		keys: s.keys, also: s.onReload}
	return rl.start(ctx, s.reload)
}

// loadConfig loads the configuration file of a serving command or
// check-config, makes it ready for the verifier (setup.New), and checks its
// Redis URL, which go-redis parses: all that is refused at start-up, not
// at the first login.
func loadConfig(path string, o config.Options) (*setup.Config, error) {
	cfg, err := setup.Load(path, o)
	if err != nil {
		return nil, err
	}
	if cfg.Store == "redis" && cfg.Redis.URL != "" {
		if _, err := redisURL(cfg.Redis.URL); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return cfg, nil
}

// logWarnings logs the configuration's warnings at start-up.
func logWarnings(log *slog.Logger, cfg *setup.Config) {
	for _, w := range cfg.Warnings() {
		log.Warn("insecure configuration", "warning", w)
	}
}
