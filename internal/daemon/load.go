package daemon

import (
	"fmt"
	"log/slog"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/setup"
)

// loadServing loads the configuration of a serving command (serve, the
// stdin/stdout helper) and sets up its logger. What fails is logged, and
// ok is false: the command exits 1, the only time a serving command exits
// non-zero. The caller catches SIGHUP first: its default action ends the
// process.
func loadServing(e *cli.Env, flags *cli.ConfigFlags) (cfg *setup.Config, log *slog.Logger, level *slog.LevelVar, ok bool) {
	cfg, err := loadConfig(flags.Path(e), flags.Options(e))
	if err != nil {
		e.Logger().Error("bad configuration", "err", err)
		return nil, nil, nil, false
	}
	log, level = e.ConfigLogger(cfg.Config)
	return cfg, log, level, true
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
