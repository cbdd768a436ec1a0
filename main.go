// Command tokenauthd lets ejabberd and Prosody accept the one-time login
// tokens of prosody-modules' mod_auth_token, with replay protection.
//
// Run without a subcommand it is an external-authentication helper on
// stdin/stdout. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"syscall"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/internal/term"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// command is one subcommand: it parses its own flags from args and returns
// the process's exit status.
type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) int
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

// env is the process's outside world, injected so that tests run commands
// without a process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// reload, if not nil, replaces SIGHUP as the serving commands' "reload
	// the configuration" signal (tests).
	reload <-chan os.Signal
	// sysLog is the system log socket a command that replies on stdout
	// logs to when stderr is the same file as stdout ("": the usual
	// places).
	sysLog string
	// detachStderr, if not nil, points the process's file descriptor 2
	// away from stdout once logging no longer goes there (main: see
	// detachStderr).
	detachStderr func() error
}

// The stdin/stdout helper, the command that runs without a subcommand.
var stdioCommand = command{"", runStdio, true, true}

func commands() map[string]command {
	return map[string]command{
		"mint":         {"print a token for user@host", runMint, false, false},
		"gen-secrets":  {"print a [hosts.\"host\"] block with fresh secrets", runGenSecrets, false, false},
		"check-config": {"validate the configuration", runCheckConfig, false, false},
		"bench":        {"measure helpers' latency and throughput with fresh tokens", runBench, true, false},
		"explain":      {"tell why a token would be accepted or refused", runExplain, false, false},
		"version":      {"print the version", runVersion, false, false},
		"serve":        {"run the daemon on a Unix socket", runServe, true, false},
		"connect":      {"relay stdin/stdout requests to the daemon", runConnect, true, true},
	}
}

func main() {
	args := os.Args[1:]
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, detachStderr: term.DetachStderr}
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
func run(ctx context.Context, e *env, args []string) int {
	c, rest := lookup(args)
	if c.replies {
		e = keepRepliesAlone(e)
	}
	return c.run(ctx, e, rest)
}

// keepRepliesAlone returns the env of a command that replies on stdout:
// e itself, or, if stderr is the same file as stdout (a terminal or a
// pipe), e with its log going to the system log instead, decided before
// anything (a flag's usage message) is written. Then file descriptor 2
// is pointed away too.
func keepRepliesAlone(e *env) *env {
	if !term.SameFile(e.stdout, e.stderr) {
		return e
	}
	c := *e
	c.stderr = logs.OpenSysLog(e.sysLog)
	if e.detachStderr != nil {
		if err := e.detachStderr(); err != nil {
			fmt.Fprintf(c.stderr, "tokenauthd: cannot detach stderr from stdout: %v\n", err)
		}
	}
	return &c
}

// newFlags returns a FlagSet whose usage names the subcommand and lists the
// subcommands when it is the main one.
func newFlags(e *env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: %s\n", usage)
		fs.PrintDefaults()
		if name == "tokenauthd" {
			fmt.Fprintln(e.stderr, "\nsubcommands:")
			cmds := commands()
			names := slices.Sorted(maps.Keys(cmds))
			for _, n := range names {
				fmt.Fprintf(e.stderr, "  %-13s %s\n", n, cmds[n].summary)
			}
		}
	}
	return fs
}

// parseFlags parses args, and reports the exit status to return when the
// command must not go on (-h gives 0, a bad flag 2).
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// parseNoArgs is parseFlags for a command that takes flags only: an
// argument is a usage error.
func parseNoArgs(e *env, fs *flag.FlagSet, args []string) (int, bool) {
	if code, ok := parseFlags(fs, args); !ok {
		return code, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, false
	}
	return 0, true
}

// configFlag defines the -config flag of a command that reads the
// configuration.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "configuration file (default $TOKENAUTHD_CONFIG, else "+config.DefaultPath+")")
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}

func runVersion(_ context.Context, e *env, args []string) int {
	fs := newFlags(e, "version", "tokenauthd version")
	if code, ok := parseNoArgs(e, fs, args); !ok {
		return code
	}
	fmt.Fprintf(e.stdout, "tokenauthd %s\n", versionString())
	return 0
}

// loadForServing loads the configuration of a serving command (the
// stdin/stdout helper, serve) and returns it with the logger it sets up. A
// configuration that does not load is logged, and ok is false: the command
// exits 1, the only time a serving command exits non-zero.
func loadForServing(e *env, cfgFlag string) (path string, cfg *config.Config, log *slog.Logger, level *slog.LevelVar, ok bool) {
	path = config.Path(cfgFlag)
	cfg, err := config.Load(path)
	if err != nil {
		newLogger(e).Error("bad configuration", "err", err)
		return path, nil, nil, nil, false
	}
	log, level = configLogger(e, cfg)
	return path, cfg, log, level, true
}

// newLogger returns the logger every serving command uses until its
// configuration is loaded: slog to stderr, never to stdout, which belongs to
// the protocol.
func newLogger(e *env) *slog.Logger {
	return slog.New(logs.NewHandler(e.stderr, false, slog.LevelInfo))
}

// configLogger returns the logger of a loaded configuration ([log] format
// and level) and the level's variable, which a reload may change.
func configLogger(e *env, cfg *config.Config) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	return slog.New(logs.NewHandler(e.stderr, cfg.LogJSON, level)), level
}
