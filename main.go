// Command tokenauthd lets ejabberd and Prosody accept the one-time login
// tokens of prosody-modules' mod_auth_token, with replay protection.
//
// Run without a subcommand it is an external-authentication helper on
// stdin/stdout. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/tokenauthd/tokenauthd/internal/bench"
	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/daemon"
	"github.com/tokenauthd/tokenauthd/internal/doctor"
	"github.com/tokenauthd/tokenauthd/internal/explain"
	"github.com/tokenauthd/tokenauthd/internal/mint"
	"github.com/tokenauthd/tokenauthd/internal/relay"
	"github.com/tokenauthd/tokenauthd/internal/term"
)

// command is one subcommand: it parses its own flags from args and returns
// the process's exit status.
type command struct {
	summary string
	run     func(ctx context.Context, env *cli.Env, args []string) int
	// signals: the command runs until stopped and stops cleanly on SIGINT
	// and SIGTERM (its context ends): the serving commands, and bench,
	// which then stops the helpers and daemons it started. Other commands
	// die of them, as any short-lived program does, even while blocked
	// reading.
	signals bool
	// replies: stdout carries the protocol's replies, and nothing else
	// may ever reach it.
	replies bool
}

// The stdin/stdout helper, the command that runs without a subcommand.
var stdioCommand = command{"", daemon.RunStdio, true, true}

func commands() map[string]command {
	return map[string]command{
		"mint":         {"print a token for user@host", mint.Run, false, false},
		"gen-secrets":  {"print a [hosts.\"host\"] block with fresh secrets", mint.RunGenSecrets, false, false},
		"check-config": {"validate the configuration", daemon.RunCheckConfig, false, false},
		"init-journal": {"make the replay journal before the daemon's first start", daemon.RunInitJournal, false, false},
		"bench":        {"measure helpers' latency and throughput with fresh tokens", bench.Run, true, false},
		"explain":      {"tell why a token would be accepted or refused", explain.Run, false, false},
		"version":      {"print the version", cli.RunVersion, false, false},
		"serve":        {"run the daemon on a Unix socket", daemon.RunServe, true, false},
		"connect":      {"relay stdin/stdout requests to the daemon", relay.Run, true, true},
		"doctor":       {"find setups that let a token in twice or refuse every login", doctor.Run, false, false},
	}
}

func main() {
	args := os.Args[1:]
	e := &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		DetachStderr: term.DetachStderr}
	ctx, stop := context.Background(), func() {}
	if c, _ := lookup(args); c.signals {
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	}
	code := run(ctx, e, args)
	stop()
	os.Exit(code)
}

// lookup returns the command args names, and its arguments: a subcommand,
// else the stdin/stdout helper with all of args.
func lookup(args []string) (command, []string) {
	if len(args) > 0 {
		if c, ok := commands()[args[0]]; ok {
			return c, args[1:]
		}
	}
	return stdioCommand, args
}

// run dispatches to a subcommand, or serves stdin/stdout.
func run(ctx context.Context, e *cli.Env, args []string) int {
	c, rest := lookup(args)
	withList := *e
	withList.Commands = listCommands
	e = &withList
	if c.replies {
		e = e.KeepRepliesAlone()
	}
	return c.run(ctx, e, rest)
}

// listCommands writes the subcommands and their summaries, for the main
// usage message.
func listCommands(w io.Writer) {
	cmds := commands()
	for _, n := range slices.Sorted(maps.Keys(cmds)) {
		fmt.Fprintf(w, "  %-13s %s\n", n, cmds[n].summary)
	}
}
