package doctor

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/tokenauthd/tokenauthd/internal/access"
)

// helperCmd is an external authentication command as doctor understands
// it: the program the server runs and, if that is tokenauthd (directly or
// through a wrapper script that runs it), how.
type helperCmd struct {
	prog       string // what the server runs (a wrapper script, or tokenauthd)
	tokenauthd bool   // prog is tokenauthd, or a script that runs it
	// foreign: prog is another program, or a script that does not run
	// tokenauthd (doctor could read it and found none).
	foreign bool
	relay   bool // tokenauthd connect: the daemon's relay
	// config is the -config given ("" if none), socket the -socket.
	config         string
	configExplicit bool
	socket         string
}

// maxScript bounds a wrapper script doctor reads.
const maxScript = 64 << 10

// helperCommand reads a command (its words, as the shell splits a command
// line: shellWords) and, for a wrapper script, the line of the script that
// runs tokenauthd. A script the server, svc, may not read is not read: it
// cannot run it, and doctor quotes nothing of it.
func (d *doctor) helperCommand(svc *service, words []string) helperCmd {
	if len(words) == 0 {
		return helperCmd{}
	}
	cmd := helperCmd{prog: words[0]}
	if isTokenauthd(words[0]) {
		cmd.tokenauthd = true
		cmd.readArgs(words[1:])
		return cmd
	}
	if !filepath.IsAbs(words[0]) || d.access(svc, words[0], access.Read) != "" {
		return cmd
	}
	script, err := d.sys.ReadFile(words[0], maxScript)
	if err != nil {
		// Too large for a script, or unreadable: a program doctor
		// cannot tell.
		cmd.foreign = !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission)
		return cmd
	}
	if !bytes.HasPrefix(script, []byte("#!")) {
		cmd.foreign = true
		return cmd
	}
	sc := bufio.NewScanner(bytes.NewReader(script))
	sc.Buffer(nil, maxScript)
	for sc.Scan() {
		w := shellWords(sc.Text())
		if len(w) > 0 && w[0] == "exec" {
			w = w[1:]
		}
		if len(w) > 0 && isTokenauthd(w[0]) {
			cmd.tokenauthd = true
			cmd.readArgs(w[1:])
			return cmd
		}
	}
	cmd.foreign = true
	return cmd
}

// isTokenauthd says whether a program is tokenauthd, by its name.
func isTokenauthd(prog string) bool { return filepath.Base(prog) == "tokenauthd" }

// readArgs reads tokenauthd's arguments: the subcommand connect, -config
// and -socket (every flag of the helper and the relay takes a value).
func (c *helperCmd) readArgs(args []string) {
	if len(args) > 0 && args[0] == "connect" {
		c.relay = true
		args = args[1:]
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			return
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		switch name {
		case "config":
			c.config, c.configExplicit = value, true
		case "socket":
			c.socket = value
		}
	}
}

// shellWords splits a command line into words as the shell does for a
// simple command: blanks separate words, quotes and backslashes quote. It
// stops at the first operator (; & | < > and a comment) or expansion ($,
// `), which doctor does not follow.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	end := func() {
		if inWord {
			words = append(words, w.String())
		}
		w.Reset()
		inWord = false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			end()
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			inWord = true
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				end()
				return words
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				w.WriteByte(s[i])
			}
			inWord = true
		case strings.IndexByte(";&|<>$`", c) >= 0 || (c == '#' && !inWord):
			end()
			return words
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	end()
	return words
}
