package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/replay"
)

// closeCounter is a memory store that counts its Close calls.
type closeCounter struct {
	*replay.Memory
	closed atomic.Int32
}

func (s *closeCounter) Close() error {
	s.closed.Add(1)
	return s.Memory.Close()
}

func newCloseCounter() *closeCounter {
	return &closeCounter{Memory: replay.NewMemory(replay.MemoryOptions{Capacity: 100, TTL: time.Minute})}
}

// busyAddr returns a loopback TCP address something listens on until the
// test ends.
func busyAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// TestNewFailsClosed: a New that fails says what failed, as serve logs it,
// and closes all it had opened: the store it was given, the daemon's
// socket (its file gone, nothing answers there), the metrics listener.
func TestNewFailsClosed(t *testing.T) {
	for _, tt := range []struct {
		name  string
		msg   string // startError's message: serve's log line
		setup func(t *testing.T, cfg *setup.Config)
	}{
		{"socket", "cannot start", func(t *testing.T, cfg *setup.Config) {
			// A file where the socket's directory should be.
			dir := filepath.Join(t.TempDir(), "file")
			fixture.WriteFile(t, dir, "")
			cfg.Socket = filepath.Join(dir, "d.sock")
		}},
		{"metrics", "cannot listen for metrics", func(t *testing.T, cfg *setup.Config) {
			cfg.MetricsListen = busyAddr(t)
		}},
		{"http", "cannot serve HTTP", func(t *testing.T, cfg *setup.Config) {
			cfg.MetricsListen = "127.0.0.1:0"
			cfg.HTTP = &config.HTTP{Listen: busyAddr(t), Apps: map[string]config.HTTPApp{"a": {Key: []byte("0123456789abcdef"), Hosts: []string{fixture.Host}}}}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := setup.Load(fixture.WriteConfig(t, t.TempDir(), ""), config.Options{})
			if err != nil {
				t.Fatal(err)
			}
			cfg.Socket = filepath.Join(t.TempDir(), "d.sock")
			tt.setup(t, cfg)
			store := newCloseCounter()
			d, err := New(cfg, Options{Log: fixture.Logger(t), Store: store})
			var se *startError
			switch {
			case err == nil:
				d.close()
				t.Fatal("New succeeded")
			case !errors.As(err, &se) || se.msg != tt.msg:
				t.Errorf("New: %v, want %q", err, tt.msg)
			}
			if n := store.closed.Load(); n != 1 {
				t.Errorf("store closed %d times, want 1", n)
			}
			if _, err := os.Lstat(cfg.Socket); err == nil {
				t.Error("socket file left after a failed New")
			}
		})
	}
}

// TestHelperListensNowhere: the stdin/stdout helper's daemon opens no
// socket and no metrics or HTTP listener, whatever the configuration
// says, and takes a memory store where serve would keep a journal.
func TestHelperListensNowhere(t *testing.T) {
	dir := t.TempDir()
	port := fixture.FreePort(t)
	cfg, err := setup.Load(fixture.WriteConfig(t, dir, fmt.Sprintf("[metrics]\nlisten = \"127.0.0.1:%d\"\n[replay]\njournal = %q\n",
		port, filepath.Join(dir, "journal"))), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Socket = filepath.Join(dir, "d.sock")
	d, err := New(cfg, Options{Log: fixture.Logger(t), Helper: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if len(d.listeners) != 0 || d.metricsL != nil || d.metrics != nil || d.api != nil {
		t.Errorf("the helper has %d sockets, metrics listener %v, metrics %v, HTTP API %v; want none",
			len(d.listeners), d.metricsL, d.metrics, d.api)
	}
	if _, ok := d.store.(*replay.Memory); !ok {
		t.Errorf("the helper's store is a %T, want *replay.Memory", d.store)
	}
	for _, p := range []string{cfg.Socket, filepath.Join(dir, "journal")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after the helper's New: %v, want nothing there", p, err)
		}
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c.Close()
		t.Error("something listens on the metrics address")
	}
}

// TestReloadAfterStop: once the daemon has stopped and closed its store,
// Reload puts nothing in effect: no verifier is built on a closed store.
func TestReloadAfterStop(t *testing.T) {
	store := newCloseCounter()
	d, _, stop := startDaemon(t, store)
	if err := d.Reload(); err != nil {
		t.Fatalf("Reload of a serving daemon: %v", err)
	}
	v := d.handler.verifier()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); !errors.Is(err, errStopped) {
		t.Errorf("Reload after stop: %v, want %v", err, errStopped)
	}
	if d.handler.verifier() != v {
		t.Error("Reload after stop swapped the verifier")
	}
	if n := store.closed.Load(); n != 1 {
		t.Errorf("store closed %d times, want 1", n)
	}
}
