// Package doctor finds the setups that silently defeat single use: it reads
// ejabberd's and Prosody's own configuration files and tokenauthd's, asks
// the machine about users, groups, files, systemd units, the daemon's
// socket and the clock, and reports each problem with the file, the key and
// the fix. Everything it asks of the machine goes through a System, so that
// tests can feed it each mistake. It never prints a secret: it reads none
// of tokenauthd's, and quotes no line of Prosody's configuration.
//
// The servers' files are written by others than root, and doctor is run
// by root. So it runs prosody.cfg.lua, which is Lua, only as Prosody's
// own user (nobody if that is root), with no new privileges, no
// environment, from /; it reads no file ejabberd's user could not read;
// it reports every configuration file, and every directory on the way to
// one, that anyone but root (and, for ejabberd's data, ejabberd's user)
// can change; a host name that is not a domain name is a finding of its
// own; and every value in a command it prints is quoted for the shell.
package doctor

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
)

// The XMPP servers' configuration files read when no flag names another.
const (
	DefaultEjabberd = "/etc/ejabberd/ejabberd.yml"
	DefaultProsody  = "/etc/prosody/prosody.cfg.lua"
)

// Severity says how bad a finding is: an error makes doctor exit 1.
type Severity int

const (
	// Note: something doctor could not check, or skipped.
	Note Severity = iota
	// Warning: a setup that works but weakens what tokenauthd promises.
	Warning
	// Error: a setup that lets a token in twice, or that refuses every
	// login.
	Error
)

func (s Severity) String() string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "note"
}

// Finding is one problem, where it is and what to do about it.
type Finding struct {
	Severity Severity
	File     string // the file that holds the mistake, or "" for the machine
	Line     int    // its line, 0 if unknown
	Key      string // the option, or what was checked
	Message  string
	Fix      string
}

// Options are doctor's inputs. Config, Ejabberd and Prosody name the files
// to read; "" means the default (for Config: $TOKENAUTHD_CONFIG, else
// config.DefaultPath), which is skipped with a note when it does not
// exist. A file named explicitly must exist.
type Options struct {
	Config, Ejabberd, Prosody string
	Stdout                    io.Writer
	// Getenv reads doctor's own environment (nil: an empty one).
	Getenv func(string) string
	// Credentials is the directory "%d/" stands for in tokenauthd's
	// *_file paths (-credentials): "" if unknown.
	Credentials string
	// System is the machine (nil: the one doctor runs on).
	System System
}

// Check checks the configurations and the machine, writes one line per
// finding and a last line that counts them, and returns the exit status:
// 1 if any finding is an error, else 0.
func Check(ctx context.Context, o Options) int {
	d := newDoctor(ctx, o)
	d.run(o)
	return d.report(o.Stdout)
}

// Run is `tokenauthd doctor`: it parses the flags and runs the checks.
func Run(ctx context.Context, e *cli.Env, args []string) int {
	fs, cfg := cli.NewConfigFlags(e, "doctor", "tokenauthd doctor [-config FILE] [-ejabberd FILE] [-prosody FILE]")
	ej := fs.String("ejabberd", "", "ejabberd's configuration (default "+DefaultEjabberd+")")
	pr := fs.String("prosody", "", "Prosody's configuration (default "+DefaultProsody+")")
	if code, ok := cli.ParseNoArgs(e, fs, args); !ok {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// An empty value given on purpose is a mistake, not the default.
	for name, v := range map[string]string{"config": cfg.Flag(), "ejabberd": *ej, "prosody": *pr} {
		if set[name] && v == "" {
			fmt.Fprintf(e.Stderr, "doctor: -%s needs a file name\n", name)
			fs.Usage()
			return 2
		}
	}
	return Check(ctx, Options{Config: cfg.Flag(), Credentials: cfg.Options(e).Credentials, Ejabberd: *ej, Prosody: *pr,
		Stdout: e.Stdout, Getenv: e.Getenv})
}

// doctor is one run's state.
type doctor struct {
	ctx      context.Context
	sys      System
	getenv   func(string) string
	creds    config.Options // what "%d/" stands for, if known
	findings []Finding

	// tad is tokenauthd's configuration, nil if it could not be read.
	tad *tokenauthdFile
	// clients are the XMPP servers that talk to the daemon's socket.
	clients []socketClient
	// ejabberdServes are the hosts ejabberd authenticates externally.
	ejabberdServes map[string]bool
	// writable are the places reported as writable by others (checkWriters).
	writable map[string]bool
}

func newDoctor(ctx context.Context, o Options) *doctor {
	d := &doctor{ctx: ctx, sys: o.System, getenv: o.Getenv, creds: config.Options{Credentials: o.Credentials}, ejabberdServes: map[string]bool{},
		writable: map[string]bool{}}
	if d.sys == nil {
		d.sys = OS()
	}
	if d.getenv == nil {
		d.getenv = func(string) string { return "" }
	}
	return d
}

// run makes every check, in the order they are reported.
func (d *doctor) run(o Options) {
	cfgPath, cfgExplicit := o.Config, o.Config != ""
	if !cfgExplicit && d.getenv("TOKENAUTHD_CONFIG") != "" {
		cfgExplicit = true
	}
	cfgPath = config.Path(cfgPath, d.getenv)
	d.tad = d.loadTokenauthd(cfgPath, cfgExplicit)

	ej, ejExplicit := o.Ejabberd, o.Ejabberd != ""
	if !ejExplicit {
		ej = DefaultEjabberd
	}
	if d.present(ej, ejExplicit, "ejabberd") {
		d.checkEjabberd(ej)
	}
	pr, prExplicit := o.Prosody, o.Prosody != ""
	if !prExplicit {
		pr = DefaultProsody
	}
	if d.present(pr, prExplicit, "Prosody") {
		d.checkProsody(pr)
	}
	d.checkDaemon()
	d.checkClock()
}

// present says whether a configuration file is there to read; a default
// that is absent is noted, one named explicitly is an error.
func (d *doctor) present(path string, explicit bool, what string) bool {
	_, err := d.sys.Stat(path)
	switch {
	case err == nil:
		return true
	case !explicit && isNotExist(err):
		d.add(Finding{Severity: Note, File: path, Message: fmt.Sprintf("no %s configuration here: %s not checked", what, what)})
	default:
		d.add(Finding{Severity: Error, File: path, Message: fmt.Sprintf("cannot read %s's configuration: %v", what, errText(err)),
			Fix: "name the file with -" + strings.ToLower(what)})
	}
	return false
}

func (d *doctor) add(f Finding) { d.findings = append(d.findings, f) }

// maxFindings bounds the report: a file with thousands of hosts must not
// flood the terminal.
const maxFindings = 200

// maxField bounds each field of a finding: paths and host names come from
// files.
const maxField = 512

// report writes the findings and the summary line, and returns the exit
// status.
func (d *doctor) report(w io.Writer) int {
	errs, warns := 0, 0
	for i, f := range d.findings {
		switch f.Severity {
		case Error:
			errs++
		case Warning:
			warns++
		}
		if i < maxFindings {
			fmt.Fprintln(w, formatFinding(f))
		}
	}
	if n := len(d.findings) - maxFindings; n > 0 {
		fmt.Fprintf(w, "doctor: %d more findings not shown\n", n)
	}
	switch {
	case errs == 0 && warns == 0:
		fmt.Fprintln(w, "doctor: no problems found")
	default:
		fmt.Fprintf(w, "doctor: %s, %s\n", plural(errs, "error"), plural(warns, "warning"))
	}
	if errs > 0 {
		return 1
	}
	return 0
}

// formatFinding gives a finding's one line:
//
//	error: FILE:LINE: KEY: MESSAGE; fix: FIX
func formatFinding(f Finding) string {
	var b strings.Builder
	b.WriteString(f.Severity.String())
	b.WriteString(": ")
	if f.File != "" {
		b.WriteString(clean(f.File))
		if f.Line > 0 {
			fmt.Fprintf(&b, ":%d", f.Line)
		}
		b.WriteString(": ")
	}
	if f.Key != "" {
		b.WriteString(clean(f.Key))
		b.WriteString(": ")
	}
	b.WriteString(clean(f.Message))
	if f.Fix != "" {
		b.WriteString("; fix: ")
		b.WriteString(cleanFix(f.Fix))
	}
	return b.String()
}

// clean makes a field safe for one line of a terminal: control characters
// and invalid UTF-8 are escaped, and it is cut at maxField bytes.
func clean(s string) string {
	var b strings.Builder
	for i, r := range s {
		if b.Len() >= maxField {
			fmt.Fprintf(&b, "...[cut, bytes in all: %d]", len(s))
			break
		}
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\ufffd"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cleanFix is clean for a fix, which may hold a command: one too long for
// a line is not shown at all, as a command cut inside a quoted word
// would let the shell read the next lines pasted after it as its own;
// nor is one that clean would change, as its words would then name
// another file.
func cleanFix(s string) string {
	if len(s) > maxField {
		return fmt.Sprintf("not shown: %d bytes, too long for one line", len(s))
	}
	if c := clean(s); c != s {
		return "not shown: it holds characters a terminal cannot show"
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
