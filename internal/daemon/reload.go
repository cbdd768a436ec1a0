package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sync"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/replay"
)

// reloader reloads the configuration file into a serving authHandler: it
// builds a new verifier on the SAME replay store (so a token accepted before
// a reload is still refused after it) and swaps it in. A configuration that
// fails to load is logged and the one in effect keeps serving.
type reloader struct {
	path    string
	opts    config.Options
	store   replay.Store
	handler *authHandler
	log     *slog.Logger
	level   *slog.LevelVar // the log level, which a reload may change
	metrics *metrics
	keys    *keySources // the fetchers of JWT keys, kept while a host's URL does not change
	// also, if not nil, is handed each configuration put in effect.
	also func(*config.Config)

	mu  sync.Mutex
	cur *setup.Config // the configuration in effect
}

// Reload loads the configuration file again and, if it is valid, puts it
// in effect for the next request.
func (r *reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.reload()
	r.metrics.reload(err == nil)
	if err != nil {
		r.log.Error("configuration reload failed; the previous configuration keeps serving", "err", err)
		return err
	}
	r.log.Info("configuration reloaded", "hosts", len(r.cur.Hosts))
	return nil
}

func (r *reloader) reload() error {
	cfg, err := loadConfig(r.path, r.opts)
	if err != nil {
		return err
	}
	// The store's time to live comes from the token parameters: a longer
	// window with the old store would let replays through.
	if cfg.Verifier.Params != r.cur.Verifier.Params {
		return fmt.Errorf("%s: [token] changed: restart to apply it", r.path)
	}
	v, err := r.keys.verifier(cfg, r.store)
	if err != nil {
		return err
	}
	for _, s := range restartOnly(r.cur.Config, cfg.Config) {
		r.log.Warn("setting changed; it takes effect at the next restart", "setting", s)
	}
	r.handler.v.Store(v)
	if r.also != nil {
		r.also(cfg.Config)
	}
	if r.level != nil {
		r.level.Set(cfg.LogLevel)
	}
	r.cur = cfg
	return nil
}

// restartOnly lists the changed settings a reload cannot apply.
func restartOnly(old, cfg *config.Config) []string {
	var s []string
	if old.Protocol != cfg.Protocol {
		s = append(s, "protocol")
	}
	if old.Capacity != cfg.Capacity {
		s = append(s, "replay.capacity")
	}
	if old.Store != cfg.Store || old.Journal != cfg.Journal || old.JournalSyncEvery != cfg.JournalSyncEvery ||
		old.RefuseAfterStart != cfg.RefuseAfterStart || !reflect.DeepEqual(old.Redis, cfg.Redis) {
		s = append(s, "replay store settings")
	}
	if old.Socket != cfg.Socket || old.SocketGroup != cfg.SocketGroup {
		s = append(s, "daemon.socket")
	}
	if old.MaxConnections != cfg.MaxConnections || old.RequestTimeout != cfg.RequestTimeout {
		s = append(s, "daemon connection limits")
	}
	if old.LogJSON != cfg.LogJSON {
		s = append(s, "log.format")
	}
	if old.MetricsListen != cfg.MetricsListen {
		s = append(s, "metrics.listen")
	}
	if httpListen(old) != httpListen(cfg) {
		s = append(s, "http.listen")
	}
	return s
}

// start reloads on every value from ch, in the background, until ctx ends
// or the returned stop is called.
func (r *reloader) start(ctx context.Context, ch <-chan os.Signal) (stop func()) {
	wctx, stop := context.WithCancel(ctx)
	go r.watch(wctx, ch)
	return stop
}

// watch reloads on every value from ch until ctx ends.
func (r *reloader) watch(ctx context.Context, ch <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			r.Reload()
		}
	}
}
