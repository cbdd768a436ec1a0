// Package daemontest runs an in-process daemon for the tests of the
// packages that talk to one (the relay, explain), as net/http/httptest
// does for HTTP servers. Only tests import it.
//
// It must never reach into the daemon: it uses only what package daemon
// exports to every caller.
package daemontest

import (
	"context"
	"testing"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/daemon"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/replay"
)

// Start runs a daemon with the configuration at cfgPath, listening on
// sock, on store (if nil, the store the configuration names), until the test ends or
// the returned stop is called; stop returns Run's error.
func Start(t testing.TB, cfgPath, sock string, store replay.Store) (stop func() error) {
	t.Helper()
	cfg, err := setup.Load(cfgPath, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(cfg, daemon.Options{Log: fixture.Logger(t), Store: store, Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	stop = d.Start(context.Background())
	t.Cleanup(func() { stop() })
	return stop
}
