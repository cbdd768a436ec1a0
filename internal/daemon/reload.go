package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/tokenauthd/tokenauthd/internal/config"
)

// errStopped is Reload's error once the daemon has stopped.
var errStopped = errors.New("the daemon has stopped")

// Reload loads the configuration file again and, if it is valid, puts it
// in effect for the next request: a new verifier on the SAME replay store
// (so a token accepted before a reload is still refused after it), the
// log level, the HTTP API's [http]. A configuration that fails to load is
// logged, and the one in effect keeps serving.
func (d *Daemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.closed {
		return errStopped
	}
	err := d.reload()
	d.metrics.reload(err == nil)
	if err != nil {
		d.log.Error("configuration reload failed; the previous configuration keeps serving", "err", err)
		return err
	}
	d.log.Info("configuration reloaded", "hosts", len(d.cfg.Hosts))
	return nil
}

// reload is Reload, under reloadMu.
func (d *Daemon) reload() error {
	path := d.cfg.Path
	cfg, err := loadConfig(path, d.load)
	if err != nil {
		return err
	}
	// The store's time to live comes from the token parameters: a longer
	// window with the old store would let replays through.
	if cfg.Verifier.Params != d.cfg.Verifier.Params {
		return fmt.Errorf("%s: [token] changed: restart to apply it", path)
	}
	v, err := d.keys.verifier(cfg, d.store)
	if err != nil {
		return err
	}
	for _, s := range restartOnly(d.cfg.Config, cfg.Config) {
		d.log.Warn("setting changed; it takes effect at the next restart", "setting", s)
	}
	d.handler.setVerifier(v)
	d.reloadHTTP(cfg.Config)
	if d.level != nil {
		d.level.Set(cfg.LogLevel)
	}
	d.cfg = cfg
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

// reloadOn reloads on every value from ch, in the background, until ctx
// ends or the returned stop is called.
func (d *Daemon) reloadOn(ctx context.Context, ch <-chan os.Signal) (stop func()) {
	wctx, stop := context.WithCancel(ctx)
	go func() {
		for {
			select {
			case <-wctx.Done():
				return
			case <-ch:
				d.Reload()
			}
		}
	}()
	return stop
}
