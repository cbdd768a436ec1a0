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

// stdioCommand is the stdin/stdout helper, the command that runs without
// a subcommand.
var stdioCommand = command{run: daemon.RunStdio, signals: true, replies: true}

// commands is the command table: each subcommand's name, summary and
// function, and whether it stops on signals or replies on stdout.
func commands() map[string]command {
	return map[string]command{
		"mint":         {summary: "print a token for user@host", run: mint.Run},
		"gen-secrets":  {summary: "print a [hosts.\"host\"] block with fresh secrets", run: mint.RunGenSecrets},
		"check-config": {summary: "validate the configuration", run: daemon.RunCheckConfig},
		"init-journal": {summary: "make the replay journal before the daemon's first start", run: daemon.RunInitJournal},
		"bench":        {summary: "measure helpers' latency and throughput with fresh tokens", run: bench.Run, signals: true},
		"explain":      {summary: "tell why a token would be accepted or refused", run: explain.Run},
		"version":      {summary: "print the version", run: cli.RunVersion},
		"serve":        {summary: "run the daemon on a Unix socket", run: daemon.RunServe, signals: true},
		"connect":      {summary: "relay stdin/stdout requests to the daemon", run: relay.Run, signals: true, replies: true},
		"doctor":       {summary: "find setups that let a token in twice or refuse every login", run: doctor.Run},
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
