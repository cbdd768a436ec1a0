package daemon

import (
	"log/slog"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
)

// loadForServing loads the configuration of a serving command (the
// stdin/stdout helper, serve) and returns it with the logger it sets up. A
// configuration that does not load is logged, and ok is false: the command
// exits 1, the only time a serving command exits non-zero.
func loadForServing(e *cli.Env, cfgFlag string) (path string, cfg *config.Config, log *slog.Logger, level *slog.LevelVar, ok bool) {
	path = config.Path(cfgFlag, e.Var)
	cfg, err := config.Load(path)
	if err != nil {
		e.Logger().Error("bad configuration", "err", err)
		return path, nil, nil, nil, false
	}
	log, level = e.ConfigLogger(cfg)
	return path, cfg, log, level, true
}
