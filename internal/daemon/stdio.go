package daemon

import (
	"context"
	"fmt"
	"io"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/protocol"
)

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
	reload, stopSignals := e.ReloadSignals()
	defer stopSignals()
	cfg, log, level, ok := loadServing(e, cfgFlag)
	if !ok {
		return 1
	}
	if *protoFlag == "" {
		mode = cfg.Mode
	}
	// With store = "redis" every helper of a pool shares one replay cache.
	d, err := New(cfg, Options{Log: log, Level: level, Load: cfgFlag.Options(e), Helper: true})
	if err != nil {
		logStartError(log, err)
		return 1
	}
	stopReload := d.reloadOn(ctx, reload)
	d.serveStream(ctx, mode, e.Stdin, e.Stdout)
	stopReload()
	d.close() // a helper never exits non-zero after start-up
	return 0
}

// serveStream answers the requests of r on w, the helper's stdin and
// stdout, in the given framing, until r ends, w fails or ctx is done.
func (d *Daemon) serveStream(ctx context.Context, mode protocol.Mode, r io.Reader, w io.Writer) {
	defer d.refusal.Flush()
	cfg := d.current()
	d.log.Info("tokenauthd started", "version", cli.Version(), "mode", "stdio",
		"protocol", mode.String(), "hosts", len(cfg.Hosts))
	logWarnings(d.log, cfg)
	srv := newProtocolServer(mode, d.handler, d.log)
	// Serve blocks reading stdin, which a signal does not interrupt: wait
	// for either, so that SIGTERM stops the helper (the signal handler
	// took over the default action).
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, r, w) }()
	select {
	case err := <-done:
		if err != nil {
			// The peer has gone (a read or write error): nothing is left
			// to answer, and a helper never exits non-zero after start-up.
			d.log.Warn("stream ended", "err", err)
		}
	case <-ctx.Done():
		d.log.Info("stopping on signal")
	}
}
