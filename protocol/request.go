package protocol

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The commands of the extauth protocol.
const (
	CmdAuth        = "auth"        // auth:User:Server:Password
	CmdIsUser      = "isuser"      // isuser:User:Server
	CmdSetPass     = "setpass"     // setpass:User:Server:Password
	CmdTryRegister = "tryregister" // tryregister:User:Server:Password
	CmdRemoveUser  = "removeuser"  // removeuser:User:Server
	CmdRemoveUser3 = "removeuser3" // removeuser3:User:Server:Password
	CmdCertAuth    = "certauth"    // certauth:User:Server:Certificate
	// CmdSeen is tokenauthd's own: seen:User:Server:Token asks whether that
	// token was already accepted, without recording it (tokenauthd explain).
	CmdSeen = "seen"
	// CmdUnused is tokenauthd's own too: unused:User:Server:Token asks
	// whether that token is known NOT to have been accepted yet, without
	// recording it. With seen it tells "recorded", "not recorded" and
	// "cannot tell" apart in replies that are strictly yes or no.
	CmdUnused = "unused"
)

// fields gives the number of ':'-separated fields of each command.
var fields = map[string]int{
	CmdAuth: 4, CmdIsUser: 3, CmdSetPass: 4, CmdTryRegister: 4,
	CmdRemoveUser: 3, CmdRemoveUser3: 4, CmdCertAuth: 4, CmdSeen: 4,
	CmdUnused: 4,
}

// commands are the commands' names, sorted; commandPrefixes the same, each
// followed by ':', as a generic request starts.
var (
	commands        = slices.Sorted(maps.Keys(fields))
	commandPrefixes = func() []string {
		p := make([]string, len(commands))
		for i, c := range commands {
			p[i] = c + ":"
		}
		return p
	}()
)

// Commands returns the names of the commands, sorted.
func Commands() []string { return slices.Clone(commands) }

// Request is one parsed request. Password is empty for commands without one;
// for certauth it holds the certificate.
type Request struct {
	Command  string
	User     string
	Server   string
	Password string
}

// ProtocolError reports a request that is not valid. It never holds the
// request's bytes, which may contain a password.
type ProtocolError struct {
	Msg string
}

func (e *ProtocolError) Error() string { return "protocol: " + e.Msg }

func protoErr(format string, a ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, a...)}
}

// ParseRequest splits a request body into its fields. The body is split on
// ':' at most three times: the password is the last field and may itself
// contain ':'. The command must be known and have its number of fields.
func ParseRequest(body string) (Request, error) {
	var r Request
	cmd, rest, sep := strings.Cut(body, ":")
	want, ok := fields[cmd]
	if !ok {
		return r, protoErr("unknown command (%d bytes)", len(cmd))
	}
	r.Command = cmd
	var f [3]string
	n := 1
	for found := sep; found && n < 4; n++ {
		if n == 3 {
			f[2] = rest // the last field keeps its ':'
			continue
		}
		f[n-1], rest, found = strings.Cut(rest, ":")
	}
	r.User, r.Server, r.Password = f[0], f[1], f[2]
	if n != want {
		return Request{}, protoErr("%s needs %d fields, got %d", cmd, want, n)
	}
	return r, nil
}

// AppendBody appends the request's body, as ParseRequest parsed it, to b:
// for a request from ParseRequest, exactly the bytes it was parsed from.
func (r Request) AppendBody(b []byte) []byte {
	b = append(append(append(append(append(b, r.Command...), ':'), r.User...), ':'), r.Server...)
	if fields[r.Command] == 4 {
		b = append(append(b, ':'), r.Password...)
	}
	return b
}
