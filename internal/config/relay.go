package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/tokenauthd/tokenauthd/internal/logs"
)

// Relay are what the relay takes from the configuration file.
type Relay struct {
	Socket   string
	Timeout  time.Duration
	LogJSON  bool
	LogLevel slog.Level
}

// LoadRelay reads the settings the relay needs ([daemon] socket,
// [connect] timeout_ms, [log] format and level), ignoring the rest: the
// relay runs as the XMPP server's user, which need not be able to read the
// daemon's configuration, let alone its secrets. A default file that is
// absent or unreadable gives the defaults; a file named explicitly must be
// readable. A file it reads is held to the daemon's rules (readConfigFile):
// whoever could write it could point the relay at a socket of theirs that
// answers yes to every login.
func LoadRelay(path string, explicit bool) (Relay, error) {
	rs := Relay{Socket: DefaultSocket, Timeout: DefaultRelayTimeout, LogLevel: slog.LevelInfo}
	var fc struct {
		Daemon struct {
			Socket string `toml:"socket"`
		} `toml:"daemon"`
		Connect connectSection `toml:"connect"`
		Log     logSection     `toml:"log"`
	}
	fc.Log.Format, fc.Log.Level = "text", "info"
	data, _, err := readConfigFile(path, Options{}.owner())
	if err != nil {
		if !explicit && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)) {
			return rs, nil
		}
		return rs, fmt.Errorf("%s: %w", path, err)
	}
	if err := CheckNesting(data); err != nil {
		return rs, fmt.Errorf("%s:%w", path, err)
	}
	if _, err := toml.Decode(string(data), &fc); err != nil {
		return rs, tomlError(path, err)
	}
	if fc.Daemon.Socket != "" {
		rs.Socket = fc.Daemon.Socket
	}
	if fc.Connect.TimeoutMS != 0 {
		if rs.Timeout, err = relayTimeout(fc.Connect.TimeoutMS); err != nil {
			return rs, fmt.Errorf("%s: connect.timeout_ms: %w", path, err)
		}
	}
	if rs.LogJSON, rs.LogLevel, err = logs.ParseSettings(fc.Log.Format, fc.Log.Level); err != nil {
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
