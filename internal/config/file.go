package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"
)

// maxConfigFile bounds a configuration file: a real one is a few KB.
const maxConfigFile = 1 << 20

// maxNesting bounds how deep a configuration nests keys, tables, inline
// tables and arrays: a real one goes four deep (hosts."h".old_otp_seeds
// and its array). The TOML parser's time and memory grow with the square
// of the depth, so deeper files are refused before they are parsed.
const maxNesting = 8

// readConfigFile reads the configuration file at path: a regular file (not
// a device or a FIFO, which could hang or exhaust the process) of at most
// maxConfigFile bytes, that only its owner, root or the running user, can
// write. It also returns a warning if every user may read it.
func readConfigFile(path string, owner int) (data []byte, warning string, err error) {
	return readTrustedFile(path, maxConfigFile, owner)
}

// readTrustedFile reads a configuration or secret file of at most max
// bytes, as readConfigFile says. Its errors and warning do not name the
// file, except the *fs.PathError of a file it cannot open or read.
func readTrustedFile(path string, max int64, owner int) (data []byte, warning string, err error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, "", err
	}
	if !st.Mode().IsRegular() {
		return nil, "", errors.New("not a regular file")
	}
	if warning, err = checkFileMode(st, owner); err != nil {
		return nil, "", err
	}
	if st.Size() > max {
		return nil, "", fmt.Errorf("larger than %d bytes", max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, "", err
	}
	if int64(len(b)) > max {
		return nil, "", fmt.Errorf("larger than %d bytes", max)
	}
	return b, warning, nil
}

// checkFileMode refuses a configuration or secret file that someone other
// than root or the running user could have written, as sshd's StrictModes
// does: whoever can write it can make tokenauthd accept any login (a
// secret of theirs, a rogue daemon socket). A file every user can read is
// accepted with a warning: it holds secrets, or names them.
func checkFileMode(st fs.FileInfo, owner int) (warning string, err error) {
	perm := st.Mode().Perm()
	if perm&0o022 != 0 {
		return "", fmt.Errorf("writable by others than its owner (mode %04o): chmod go-w it", perm)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if uid := int(sys.Uid); uid != 0 && uid != owner {
			return "", fmt.Errorf("owned by user %d, neither root nor the user tokenauthd runs as (%d): chown it", uid, owner)
		}
	}
	if perm&0o004 != 0 {
		return fmt.Sprintf("readable by every user (mode %04o): chmod o-r it", perm), nil
	}
	return "", nil
}

// secretFiles lists the secret files fc names (and its JWT key sets, if
// keys), as written.
func secretFiles(fc *fileConfig, keys bool) []string {
	files := []string{fc.Replay.RedisPassFile}
	for _, name := range slices.Sorted(maps.Keys(fc.Hosts)) {
		h := fc.Hosts[name]
		files = append(files, h.TokenSecretFile, h.OTPSeedFile)
		if keys && h.JWT != nil {
			files = append(files, h.JWT.KeysFile)
		}
	}
	files = append(files, fc.HTTP.TLSKeyFile)
	for _, name := range slices.Sorted(maps.Keys(fc.HTTP.Apps)) {
		files = append(files, fc.HTTP.Apps[name].KeyFile)
	}
	return slices.DeleteFunc(files, func(f string) bool { return f == "" })
}

// secretFileWarnings warns of the secret files fc names that every user
// may read. (Files that others than their owner may write are refused
// when read.)
func secretFileWarnings(fc *fileConfig, o Options) []string {
	var w []string
	for _, f := range secretFiles(fc, false) {
		p, err := credentialPath(f, o)
		if err != nil {
			continue
		}
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o004 != 0 {
			w = append(w, fmt.Sprintf("%s: readable by every user (mode %04o): chmod o-r it", p, st.Mode().Perm()))
		}
	}
	return w
}

// nestError is a configuration refused before parsing: nested too deep,
// or not TOML the scan can follow.
type nestError struct {
	line int
	deep bool // nested deeper than maxNesting; else a syntax error
}

func (e *nestError) Error() string {
	if e.deep {
		return fmt.Sprintf("%d: nested more than %d levels deep", e.line, maxNesting)
	}
	return fmt.Sprintf("%d: syntax error", e.line)
}

// CheckNesting scans a TOML document, without building it, and returns a
// *nestError if it nests keys, tables, inline tables and arrays deeper
// than maxNesting, or if it cannot follow it (which the TOML parser would
// refuse too). Depth is the number of keys and arrays on the way from the
// top to a value: [a.b] is 2 deep, c = [1] under it 4.
func CheckNesting(b []byte) error {
	s := &nestScan{b: b}
	// The byte order marks the TOML parser skips.
	for _, bom := range []string{"\xef\xbb\xbf", "\xff\xfe", "\xfe\xff"} {
		if bytes.HasPrefix(b, []byte(bom)) {
			s.i = len(bom)
			break
		}
	}
	return s.document()
}

// nestScan is CheckNesting's position in the document.
type nestScan struct {
	b []byte
	i int
}

// fail returns the error for the current position.
func (s *nestScan) fail(deep bool) error {
	return &nestError{line: bytes.Count(s.b[:min(s.i, len(s.b))], []byte("\n")) + 1, deep: deep}
}

// document scans table headers and key/value pairs to the end.
func (s *nestScan) document() error {
	base := 0 // the depth of the current table
	for {
		s.skip(true)
		if s.i >= len(s.b) {
			return nil
		}
		if s.b[s.i] != '[' {
			n, err := s.key()
			if err != nil {
				return err
			}
			if err := s.keyValue(base + n); err != nil {
				return err
			}
			continue
		}
		s.i++
		array := s.at('[')
		if array {
			s.i++
		}
		n, err := s.key()
		if err != nil {
			return err
		}
		if base = n; array {
			base++
		}
		if base > maxNesting {
			return s.fail(true)
		}
		s.skip(false)
		if !s.at(']') || (array && !s.at2(']')) {
			return s.fail(false)
		}
		s.i++
		if array {
			s.i++
		}
	}
}

// keyValue scans "= value" after a key at depth d.
func (s *nestScan) keyValue(d int) error {
	if d > maxNesting {
		return s.fail(true)
	}
	s.skip(false)
	if !s.at('=') {
		return s.fail(false)
	}
	s.i++
	s.skip(false)
	return s.value(d)
}

// value scans a value whose key is d deep.
func (s *nestScan) value(d int) error {
	if s.i >= len(s.b) {
		return s.fail(false)
	}
	switch s.b[s.i] {
	case '"', '\'':
		return s.str()
	case '[':
		return s.array(d + 1)
	case '{':
		return s.inlineTable(d)
	}
	// A number, boolean or date: up to what ends a value. A date may hold
	// a space.
	start := s.i
	for s.i < len(s.b) && strings.IndexByte(",]}#\r\n[{\"'=", s.b[s.i]) < 0 {
		s.i++
	}
	if s.i == start {
		return s.fail(false)
	}
	return nil
}

// array scans [v, ...], whose values are d deep.
func (s *nestScan) array(d int) error {
	if d > maxNesting {
		return s.fail(true)
	}
	return s.items(']', func() error { return s.value(d) })
}

// inlineTable scans {k = v, ...} whose own key is d deep.
func (s *nestScan) inlineTable(d int) error {
	return s.items('}', func() error {
		n, err := s.key()
		if err != nil {
			return err
		}
		return s.keyValue(d + n)
	})
}

// items scans the items of an array or inline table, from its opening
// bracket to its closing one, close, each with item.
func (s *nestScan) items(close byte, item func() error) error {
	s.i++
	for {
		s.skip(true)
		if s.at(close) {
			s.i++
			return nil
		}
		if err := item(); err != nil {
			return err
		}
		s.skip(true)
		switch {
		case s.at(','):
			s.i++
		case s.at(close):
			s.i++
			return nil
		default:
			return s.fail(false)
		}
	}
}

// key scans a key (bare or quoted parts joined by dots) and returns its
// number of parts.
func (s *nestScan) key() (int, error) {
	n := 0
	for {
		s.skip(false)
		if s.i >= len(s.b) {
			return 0, s.fail(false)
		}
		if c := s.b[s.i]; c == '"' || c == '\'' {
			if err := s.str(); err != nil {
				return 0, err
			}
		} else {
			start := s.i
			for s.i < len(s.b) && strings.IndexByte(" \t\r\n.=[]{}\"'#,", s.b[s.i]) < 0 {
				s.i++
			}
			if s.i == start {
				return 0, s.fail(false)
			}
		}
		n++
		if n > maxNesting {
			return 0, s.fail(true)
		}
		s.skip(false)
		if !s.at('.') {
			return n, nil
		}
		s.i++
	}
}

// str scans a string: basic or literal, on one line or several.
func (s *nestScan) str() error {
	q := s.b[s.i]
	if s.i+2 < len(s.b) && s.b[s.i+1] == q && s.b[s.i+2] == q {
		return s.multiline(q)
	}
	for s.i++; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '\n':
			return s.fail(false)
		case c == '\\' && q == '"':
			s.i++
		case c == q:
			s.i++
			return nil
		}
	}
	return s.fail(false)
}

// multiline scans a string in three quotes q. Quotes right after the
// closing three are content (TOML allows two; the parser takes more).
func (s *nestScan) multiline(q byte) error {
	for s.i += 3; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '\\' && q == '"':
			s.i++
		case c == q && s.i+2 < len(s.b) && s.b[s.i+1] == q && s.b[s.i+2] == q:
			for s.i += 3; s.at(q); s.i++ {
			}
			return nil
		}
	}
	return s.fail(false)
}

// skip passes spaces and tabs, and with newlines also line ends and
// comments.
func (s *nestScan) skip(newlines bool) {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t':
		case '\r', '\n':
			if !newlines {
				return
			}
		case '#':
			if !newlines {
				return
			}
			for s.i < len(s.b) && s.b[s.i] != '\n' {
				s.i++
			}
			continue
		default:
			return
		}
		s.i++
	}
}

// at reports whether the current byte is c.
func (s *nestScan) at(c byte) bool { return s.i < len(s.b) && s.b[s.i] == c }

// at2 reports whether the byte after the current one is c.
func (s *nestScan) at2(c byte) bool { return s.i+1 < len(s.b) && s.b[s.i+1] == c }
