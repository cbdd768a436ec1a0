package main

import (
	"context"
	"fmt"
	"os"

	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
)

// runStdio is the external-authentication helper on stdin/stdout, as
// ejabberd's extauth_program or Prosody's external_auth_command.
func runStdio(ctx context.Context, e *env, args []string) int {
	// A terminal echoes what it is sent back to the sender, where it
	// would be read as a reply, and acts on control bytes: turn that off
	// before anything else.
	if f, ok := e.stdin.(*os.File); ok {
		prepareTerminal(f)
	}
	fs := newFlags(e, "tokenauthd", "tokenauthd [-config FILE] [-protocol auto|ejabberd|generic] | tokenauthd SUBCOMMAND -h")
	cfgFlag := fs.String("config", "", "configuration file (default $TOKENAUTHD_CONFIG, else "+defaultConfigPath+")")
	protoFlag := fs.String("protocol", "", "framing: auto, ejabberd or generic (default: the configuration's)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "tokenauthd: unknown subcommand %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	log := newLogger(e)
	cfg, err := loadConfig(configPath(*cfgFlag))
	if err != nil {
		log.Error("bad configuration", "err", err)
		return 1
	}
	mode := cfg.Protocol
	if *protoFlag != "" {
		if mode, err = protocol.ParseMode(*protoFlag); err != nil {
			log.Error("bad -protocol", "err", err)
			return 1
		}
	}
	// With store = "redis" every helper of a pool shares one replay cache.
	store, err := newStore(cfg, log, false)
	if err != nil {
		log.Error("cannot open the replay store", "err", err)
		return 1
	}
	defer store.Close()
	v, err := newVerifier(cfg, store)
	if err != nil {
		log.Error("bad configuration", "err", err)
		return 1
	}
	log.Info("tokenauthd started", "version", versionString(), "mode", "stdio",
		"protocol", mode.String(), "hosts", len(cfg.Hosts))
	srv := newProtocolServer(mode, newAuthHandler(v, log), log)
	// Serve blocks reading stdin, which a signal does not interrupt: wait
	// for either, so that SIGTERM stops the helper (the signal handler
	// took over the default action).
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, e.stdin, e.stdout) }()
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

// newMemoryStore returns the in-process replay store, with its capacity
// guard logging every record forced out while still live.
func newMemoryStore(cfg *Config, log interface{ Warn(string, ...any) }) *replay.Memory {
	return replay.NewMemory(replay.MemoryOptions{
		Capacity: cfg.Capacity,
		TTL:      cfg.Params.ReplayTTL(),
		OnLiveEviction: func() {
			log.Warn("replay cache full: a record still inside its window was evicted; raise [replay] capacity",
				"capacity", cfg.Capacity)
		},
	})
}
