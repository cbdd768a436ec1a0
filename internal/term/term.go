// Package term handles the files a helper speaks its protocol on when they
// are terminals or shared: Prosody's mod_auth_external runs helpers on a
// pseudo-terminal that is their stdin, stdout and stderr at once. It knows
// nothing of the protocol or of tokens.
package term

import (
	"io"
	"os"
)

// SameFile reports whether what is written to a would show where b's
// output goes: both are the same open file (device and inode: one pipe,
// one terminal opened twice), or both are terminals (one may be /dev/tty,
// the controlling terminal under another name). Writers that are not
// files are not.
func SameFile(a, b io.Writer) bool {
	fa, ok := a.(*os.File)
	if !ok {
		return false
	}
	fb, ok := b.(*os.File)
	if !ok {
		return false
	}
	sa, err := fa.Stat()
	if err != nil {
		return false
	}
	sb, err := fb.Stat()
	if err != nil {
		return false
	}
	return os.SameFile(sa, sb) || (IsTerminal(fa) && IsTerminal(fb))
}
