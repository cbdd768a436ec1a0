package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
)

// NewMemoryStore returns the in-process replay store, with its capacity
// guard logging every record forced out while still live.
// The warning is rate limited (a flood of valid tokens would otherwise log
// one line per token); the store counts every eviction (LiveEvictions, and
// the tokenauthd_replay_live_evictions_total metric).
func NewMemoryStore(cfg *setup.Config, log *slog.Logger) *replay.Memory {
	rl := logs.NewRateLog(log, nil)
	var m *replay.Memory
	m = replay.NewMemory(replay.MemoryOptions{
		Capacity: cfg.Capacity,
		TTL:      cfg.Verifier.Params.ReplayTTL(),
		OnLiveEviction: func() {
			// m.LiveEvictions is an atomic counter: no store lock taken.
			rl.Log(slog.LevelWarn, "live_eviction",
				"replay cache full: a record still inside its window was evicted; raise [replay] capacity",
				"capacity", cfg.Capacity, "live_evictions", m.LiveEvictions())
		},
	})
	return m
}

// RunStdio is the external-authentication helper on stdin/stdout, as
// ejabberd's extauth_program or Prosody's external_auth_command.
func RunStdio(ctx context.Context, e *cli.Env, args []string) int {
	fs, cfgFlag := cli.NewConfigFlags(e, "tokenauthd", "tokenauthd [-config FILE] [-protocol auto|ejabberd|generic] | tokenauthd SUBCOMMAND -h")
	protoFlag := fs.String("protocol", "", "framing: auto, ejabberd or generic (default: the configuration's)")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.Stderr, "tokenauthd: unknown subcommand %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	var mode protocol.Mode
	if *protoFlag != "" {
		var err error
		if mode, err = protocol.ParseMode(*protoFlag); err != nil {
			e.Logger().Error("bad -protocol", "err", err)
			return 1
		}
	}
	// With store = "redis" every helper of a pool shares one replay cache.
	sv, store, ok := startServing(e, cfgFlag, "", false)
	if !ok {
		return 1
	}
	defer sv.stop()
	cfg, log := sv.cfg, sv.log
	if *protoFlag == "" {
		mode = cfg.Mode
	}
	defer store.Close()
	v, err := sv.keys.verifier(cfg, store)
	if err != nil {
		log.Error("bad configuration", "err", err)
		return 1
	}
	log.Info("tokenauthd started", "version", cli.Version(), "mode", "stdio",
		"protocol", mode.String(), "hosts", len(cfg.Hosts))
	logWarnings(log, cfg)
	h := newAuthHandler(v, log)
	h.seen = sv.seen
	defer h.refusal.Flush()
	defer sv.reloadOnSignal(ctx, store, h, nil)()

	srv := newProtocolServer(mode, h, log)
	// Serve blocks reading stdin, which a signal does not interrupt: wait
	// for either, so that SIGTERM stops the helper (the signal handler
	// took over the default action).
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, e.Stdin, e.Stdout) }()
	select {
	case err := <-done:
		if err != nil {
			// The peer has gone (a read or write error): nothing is left
			// to answer, and a helper never exits non-zero after start-up.
			log.Warn("stream ended", "err", err)
		}
	case <-ctx.Done():
		log.Info("stopping on signal")
	}
	return 0
}
