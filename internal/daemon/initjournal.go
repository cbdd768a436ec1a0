package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/replay"
)

// RunInitJournal is `tokenauthd init-journal`: it makes the journal the
// configuration names ([replay] journal), before serve's first start, for
// the user serve runs as, with a record of when it was made: that first
// start is then known to be one, and accepts tokens at once, where a
// journal it does not find could have been lost. It never makes one where
// a journal is or was. Exit status 1 for any error.
func RunInitJournal(_ context.Context, e *cli.Env, args []string) int {
	fs, cfgFlag := cli.NewConfigFlags(e, "init-journal", "tokenauthd init-journal [-config FILE] [-user NAME]")
	userFlag := fs.String("user", "", "the user serve runs as, who gets the journal (default: the current user; the package's is tokenauthd)")
	if code, ok := cli.ParseNoArgs(e, fs, args); !ok {
		return code
	}
	path := cfgFlag.Path(e)
	fail := func(format string, a ...any) int {
		fmt.Fprintf(e.Stdout, "%s: error: %s\n", path, fmt.Sprintf(format, a...))
		return 1
	}
	a, err := lookupAccount(*userFlag)
	if err != nil {
		return fail("-user: %v", err)
	}
	o := cfgFlag.Options(e)
	o.Owner = &a.UID
	cfg, err := config.Load(path, o)
	if err != nil {
		return fail("%v", err)
	}
	if cfg.Journal == "" {
		return fail("[replay] journal is not set: there is no journal to make")
	}
	err = replay.CreateJournal(cfg.Journal, time.Now(), a.UID, a.GID)
	switch {
	case errors.Is(err, replay.ErrJournalExists):
		return fail("%v: a journal that is there, or was (its lock is left), is never made again: if it was lost, the daemon's start refuses tokens for a minute or two, as it must", err)
	case err != nil:
		return fail("%v", err)
	}
	fmt.Fprintf(e.Stdout, "%s: made %s for user %s: serve's first start on it accepts tokens at once\n", path, cfg.Journal, a.Name)
	return 0
}
