// Package cli is what every tokenauthd command shares: the process's
// outside world (Env: standard streams, environment, signals), flag
// parsing with one usage style, the version, and the first logger. It knows
// nothing of tokens, replay stores or the protocol's bytes.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/internal/term"
)

// Env is the process's outside world, injected so that tests run commands
// without a process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the environment (os.Getenv in the process; nil: an
	// empty environment).
	Getenv func(key string) string
	// Commands, if set, writes the list of subcommands, for the main
	// usage message.
	Commands func(w io.Writer)
	// reload, if not nil, replaces SIGHUP as the serving commands' "reload
	// the configuration" signal (tests).
	Reload <-chan os.Signal
	// SysLog is the system log socket a command that replies on stdout
	// logs to when stderr is the same file as stdout ("": the usual
	// places).
	SysLog string
	// DetachStderr, if not nil, points the process's file descriptor 2
	// away from stdout once logging no longer goes there (main gives
	// term.DetachStderr).
	DetachStderr func() error
}

// KeepRepliesAlone returns the env of a command that replies on stdout,
// before anything (a flag's usage message) is written. A terminal on
// stdin stops echoing what it is sent back to the sender, where it would
// be read as a reply, and acting on control bytes (term.Prepare). If
// stderr is the same file as stdout (a terminal or a pipe), the log goes
// to the system log instead, and file descriptor 2 is pointed away too;
// otherwise e itself is returned.
func (e *Env) KeepRepliesAlone() *Env {
	if f, ok := e.Stdin.(*os.File); ok {
		term.Prepare(f)
	}
	if !term.SameFile(e.Stdout, e.Stderr) {
		return e
	}
	c := *e
	c.Stderr = logs.OpenSysLog(e.SysLog)
	if e.DetachStderr != nil {
		if err := e.DetachStderr(); err != nil {
			fmt.Fprintf(c.Stderr, "tokenauthd: cannot detach stderr from stdout: %v\n", err)
		}
	}
	return &c
}

// NewFlags returns a FlagSet whose usage names the subcommand and lists the
// subcommands when it is the main one.
func NewFlags(e *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.Stderr, "usage: %s\n", usage)
		fs.PrintDefaults()
		if name == "tokenauthd" && e.Commands != nil {
			fmt.Fprintln(e.Stderr, "\nsubcommands:")
			e.Commands(e.Stderr)
		}
	}
	return fs
}

// ParseFlags parses args, and reports the exit status to return when the
// command must not go on (-h gives 0, a bad flag 2).
func ParseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// ParseNoArgs is ParseFlags for a command that takes flags only: an
// argument is a usage error.
func ParseNoArgs(e *Env, fs *flag.FlagSet, args []string) (int, bool) {
	if code, ok := ParseFlags(fs, args); !ok {
		return code, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.Stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, false
	}
	return 0, true
}

// ConfigFlags are the flags of a command that reads the configuration:
// -config and -credentials.
type ConfigFlags struct{ path, credentials *string }

// NewConfigFlags is NewFlags for a command that reads the configuration:
// it defines -config and -credentials.
func NewConfigFlags(e *Env, name, usage string) (*flag.FlagSet, *ConfigFlags) {
	fs := NewFlags(e, name, usage)
	return fs, &ConfigFlags{
		path:        fs.String("config", "", "configuration file (default $TOKENAUTHD_CONFIG, else "+config.DefaultPath+")"),
		credentials: fs.String("credentials", "", "the directory \"%d/\" stands for in *_file paths (default $CREDENTIALS_DIRECTORY, which systemd sets for the service)"),
	}
}

// Flag is -config's value, "" if not given.
func (c *ConfigFlags) Flag() string { return *c.path }

// Path is the configuration file: -config, else $TOKENAUTHD_CONFIG, else
// config.DefaultPath.
func (c *ConfigFlags) Path(e *Env) string { return config.Path(*c.path, e.Var) }

// Options are the configuration's settings from outside its file:
// -credentials, else $CREDENTIALS_DIRECTORY.
func (c *ConfigFlags) Options(e *Env) config.Options {
	o := config.Options{Credentials: *c.credentials}
	if o.Credentials == "" {
		o.Credentials = e.Var("CREDENTIALS_DIRECTORY")
	}
	return o
}

// Load loads the configuration at Path with Options, and returns its path.
func (c *ConfigFlags) Load(e *Env) (string, *config.Config, error) {
	path := c.Path(e)
	cfg, err := config.Load(path, c.Options(e))
	return path, cfg, err
}

// version and commit are set at build time by scripts/package, from the
// git tag or the VERSION file and the commit built:
//
//	-ldflags "-X github.com/tokenauthd/tokenauthd/internal/cli.version=0.1.0
//	          -X github.com/tokenauthd/tokenauthd/internal/cli.commit=HASH"
//
// The version is the Debian package's, so that `tokenauthd version` and
// `dpkg -s tokenauthd` say the same.
var version, commit = "", ""

// Version is the version built: the one set at build time, else the
// module's (go install ...@vX), else "devel" (with the commit when go build
// recorded it).
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		if rev := buildSetting(bi, "vcs.revision"); len(rev) >= 12 {
			return "devel-" + rev[:12]
		}
	}
	return "devel"
}

// Commit is the commit built: the one set at build time, else the one go
// build recorded, else "".
func Commit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		return buildSetting(bi, "vcs.revision")
	}
	return ""
}

func buildSetting(bi *debug.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// RunVersion prints "tokenauthd VERSION", and "(commit HASH)" when the
// commit is known.
func RunVersion(_ context.Context, e *Env, args []string) int {
	fs := NewFlags(e, "version", "tokenauthd version")
	if code, ok := ParseNoArgs(e, fs, args); !ok {
		return code
	}
	if c := Commit(); c != "" {
		fmt.Fprintf(e.Stdout, "tokenauthd %s (commit %s)\n", Version(), c)
	} else {
		fmt.Fprintf(e.Stdout, "tokenauthd %s\n", Version())
	}
	return 0
}

// Logger returns the logger every serving command uses until its
// configuration is loaded: slog to stderr, never to stdout, which belongs to
// the protocol.
func (e *Env) Logger() *slog.Logger {
	return slog.New(logs.NewHandler(e.Stderr, false, slog.LevelInfo))
}

// ConfigLogger returns the logger of a loaded configuration ([log] format
// and level) and the level's variable, which a reload may change.
func (e *Env) ConfigLogger(cfg *config.Config) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	return slog.New(logs.NewHandler(e.Stderr, cfg.LogJSON, level)), level
}

// Var returns the environment variable key, through Getenv.
func (e *Env) Var(key string) string {
	if e.Getenv == nil {
		return ""
	}
	return e.Getenv(key)
}

// ReloadSignals returns the channel that asks for reloads: the injected
// one, or SIGHUP's. stop undoes the signal handling.
func (e *Env) ReloadSignals() (ch <-chan os.Signal, stop func()) {
	if e.Reload != nil {
		return e.Reload, func() {}
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

// UnixTime is a flag's time, given in Unix seconds; the zero UnixTime
// means the flag was not given.
type UnixTime struct{ t time.Time }

// AtFlag defines -at, the moment a command works as of.
func AtFlag(fs *flag.FlagSet, usage string) *UnixTime {
	u := &UnixTime{}
	fs.Var(u, "at", usage)
	return u
}

// Set parses Unix seconds.
func (u *UnixTime) Set(s string) error {
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil || sec < 0 {
		return errors.New("not a Unix time in seconds")
	}
	u.t = time.Unix(sec, 0)
	return nil
}

func (u *UnixTime) String() string {
	if u == nil || u.t.IsZero() {
		return ""
	}
	return strconv.FormatInt(u.t.Unix(), 10)
}

// Given reports whether the flag was set.
func (u *UnixTime) Given() bool { return !u.t.IsZero() }

// Or returns the flag's time, or now if it was not given.
func (u *UnixTime) Or(now time.Time) time.Time {
	if u.Given() {
		return u.t
	}
	return now
}
