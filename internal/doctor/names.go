package doctor

import (
	"strconv"
	"strings"

	"al.essio.dev/pkg/shellescape"
	"golang.org/x/net/idna"
)

// validDomain says whether a host name an XMPP server's file gives is a
// domain name (IDNA2008, as XMPP's domainparts are: RFC 7622), in the
// lower case both servers fold it to: labels of letters, digits and
// hyphens, or of letters of other scripts, "exämple.org" as well as
// "example.org". Anything else (quotes, ;, $, spaces, control
// characters, an empty label) is reported as a finding of its own and
// reaches no other one.
func validDomain(name string) bool {
	if name == "" || len(name) > 253*4 {
		return false
	}
	_, err := idna.Registration.ToASCII(strings.ToLower(name))
	return err == nil
}

// sh writes a command line whose words are taken literally by a POSIX
// shell, whatever they hold: a word with anything but letters, digits and
// @%+=:,./- is single-quoted. Every value doctor puts in a printed
// command, a path or a name read from a file, goes through it.
func sh(words ...string) string { return shellescape.QuoteCommand(words) }

// chownFix is the command that gives a file to root and a group, readable
// by the group alone.
func chownFix(group, path string) string {
	return sh("chown", "root:"+group, path) + " && " + sh("chmod", "0640", path)
}

// invalidHost is the finding for a host name that is no domain name: the
// name quoted, every byte that is not printable ASCII escaped, and no
// command to run.
func invalidHost(name string) string {
	return strconv.QuoteToASCII(name) + " is not a valid domain name: doctor checks nothing else of it " +
		"and prints no command with it; give the host a domain name (letters, digits, hyphens and dots)"
}
