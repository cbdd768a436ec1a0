package man

import (
	"bufio"
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/setup"
)

const (
	commandPage = "tokenauthd.8.md"
	configPage  = "tokenauthd.toml.5.md"
	example     = "../../config.toml.example"
)

// usage is what -h says of one command.
type usage struct {
	line  string   // the usage line, without "usage: "
	flags []string // the flags' names, sorted, without "-"
	subs  []string // the subcommands, sorted (the main command only)
}

var (
	flagLine = regexp.MustCompile(`^  -([A-Za-z0-9-]+)`)
	subLine  = regexp.MustCompile(`^  ([a-z][a-z-]*) `)
)

// help runs tokenauthd ARGS -h and parses its usage message, which goes to
// stderr; stdout must stay empty.
func help(t *testing.T, args ...string) usage {
	t.Helper()
	cmd := exec.Command(fixture.Binary(t), append(args, "-h")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tokenauthd %v -h: %v\n%s", args, err, stderr.Bytes())
	}
	if stdout.Len() != 0 {
		t.Fatalf("tokenauthd %v -h wrote %q on stdout", args, stdout.Bytes())
	}
	var u usage
	inSubs := false
	for _, l := range strings.Split(stderr.String(), "\n") {
		switch {
		case strings.HasPrefix(l, "usage: "):
			u.line = strings.TrimPrefix(l, "usage: ")
		case l == "subcommands:":
			inSubs = true
		case inSubs && subLine.MatchString(l):
			u.subs = append(u.subs, subLine.FindStringSubmatch(l)[1])
		case flagLine.MatchString(l):
			u.flags = append(u.flags, flagLine.FindStringSubmatch(l)[1])
		}
	}
	if u.line == "" {
		t.Fatalf("tokenauthd %v -h printed no usage line:\n%s", args, stderr.Bytes())
	}
	slices.Sort(u.flags)
	slices.Sort(u.subs)
	return u
}

var (
	commandHeading = regexp.MustCompile("^### (tokenauthd(?: [a-z-]+)?)$")
	usageSpan      = regexp.MustCompile("^`(tokenauthd.*)`$")
	// A definition term: **-flag** or **key** =, at the start of a line.
	flagTerm = regexp.MustCompile(`^\*\*-([A-Za-z0-9-]+)\*\*`)
	keyTerm  = regexp.MustCompile(`^\*\*([a-z_]+)\*\* = `)
)

// pageCommand is what tokenauthd.8.md says of one command.
type pageCommand struct {
	usages []string // the code spans on lines of their own
	flags  []string // the flags defined, in the page's order
}

// readCommandPage parses the COMMANDS section of tokenauthd.8.md: one "###
// tokenauthd SUBCOMMAND" heading per command, its usage line as a code
// span, then its flags as definition terms.
func readCommandPage(t *testing.T) map[string]*pageCommand {
	t.Helper()
	b, err := os.ReadFile(commandPage)
	if err != nil {
		t.Fatal(err)
	}
	cmds := map[string]*pageCommand{}
	var cur *pageCommand
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case commandHeading.MatchString(l):
			name := commandHeading.FindStringSubmatch(l)[1]
			if cmds[name] != nil {
				t.Errorf("%s: %q has two sections", commandPage, name)
			}
			cur = &pageCommand{}
			cmds[name] = cur
		case strings.HasPrefix(l, "#"):
			cur = nil // the end of COMMANDS, or another heading
		case cur == nil:
		case usageSpan.MatchString(l):
			cur.usages = append(cur.usages, usageSpan.FindStringSubmatch(l)[1])
		case flagTerm.MatchString(l):
			cur.flags = append(cur.flags, flagTerm.FindStringSubmatch(l)[1])
		}
	}
	return cmds
}

// TestCommandPage: tokenauthd.8.md has a section for the helper and for each
// subcommand -h lists, and for nothing else; each section's usage line is
// -h's, and its flags are exactly the ones -h lists.
func TestCommandPage(t *testing.T) {
	main := help(t)
	if len(main.subs) < 5 {
		t.Fatalf("tokenauthd -h lists %d subcommands: %q", len(main.subs), main.subs)
	}
	page := readCommandPage(t)
	want := map[string]usage{"tokenauthd": main}
	for _, s := range main.subs {
		want["tokenauthd "+s] = help(t, s)
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		u := want[name]
		p := page[name]
		if p == nil {
			t.Errorf("%s: no section \"### %s\" (usage: %s)", commandPage, name, u.line)
			continue
		}
		if !slices.Equal(p.usages, []string{u.line}) {
			t.Errorf("%s: %s: usage lines %q, want [%q] as -h prints it", commandPage, name, p.usages, u.line)
		}
		if dup := duplicates(p.flags); len(dup) > 0 {
			t.Errorf("%s: %s: flags defined twice: %q", commandPage, name, dup)
		}
		got := slices.Sorted(slices.Values(p.flags))
		got = slices.Compact(got)
		for _, f := range missing(u.flags, got) {
			t.Errorf("%s: %s: -%s is in -h but not in the page", commandPage, name, f)
		}
		for _, f := range missing(got, u.flags) {
			t.Errorf("%s: %s: -%s is in the page but not in -h", commandPage, name, f)
		}
	}
	for name := range page {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: section %q names no command of tokenauthd -h", commandPage, name)
		}
	}
}

// missing returns the elements of want that are not in got.
func missing(want, got []string) []string {
	var m []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			m = append(m, w)
		}
	}
	return m
}

func duplicates(s []string) []string {
	seen := map[string]bool{}
	var d []string
	for _, x := range s {
		if seen[x] {
			d = append(d, x)
		}
		seen[x] = true
	}
	return d
}

// A key of the configuration: section ("" for the top level, `hosts."HOST"`
// for every host's) and name.
type key struct{ section, name string }

func (k key) String() string {
	if k.section == "" {
		return k.name
	}
	return "[" + k.section + "] " + k.name
}

var (
	sectionHeading = regexp.MustCompile(`^### (?:Top level|\[([a-z]+(?:\."HOST"(?:\.jwt)?|\.apps\."NAME"|\.credentials)?)\])$`)
	tableLine      = regexp.MustCompile(`^(?:#\s*)?\[([a-z]+)(?:\."[^"]*"(\.jwt)?|\.(apps)\."[^"]*"|\.(credentials))?\]\s*$`)
	commentedKey   = regexp.MustCompile(`^#\s*(?:or:\s*)?([a-z_]+) = `)
)

// readConfigPage returns the options tokenauthd.toml.5.md defines: "###
// [section]" headings, each followed by "**key** = *default*" terms.
func readConfigPage(t *testing.T) []key {
	t.Helper()
	b, err := os.ReadFile(configPage)
	if err != nil {
		t.Fatal(err)
	}
	var keys []key
	section, in := "", false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case sectionHeading.MatchString(l):
			section, in = sectionHeading.FindStringSubmatch(l)[1], true
		case strings.HasPrefix(l, "#"):
			in = false
		case in && keyTerm.MatchString(l):
			keys = append(keys, key{section, keyTerm.FindStringSubmatch(l)[1]})
		}
	}
	return keys
}

// exampleKeys returns the options of config.toml.example: the keys it sets
// (as the TOML parser reads them) and the ones it shows commented out ("#
// listen = ...", "# or: token_secret_file = ...").
func exampleKeys(t *testing.T) []key {
	t.Helper()
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	md, err := toml.Decode(string(b), &v)
	if err != nil {
		t.Fatal(err)
	}
	set := map[key]bool{}
	for _, k := range md.Keys() {
		if md.Type(k...) == "Hash" {
			continue // a table
		}
		switch {
		case len(k) == 1:
			set[key{"", k[0]}] = true
		case len(k) == 2:
			set[key{k[0], k[1]}] = true
		case len(k) == 3 && k[0] == "hosts":
			set[key{`hosts."HOST"`, k[2]}] = true
		case len(k) == 4 && k[0] == "hosts" && k[2] == "jwt":
			set[key{`hosts."HOST".jwt`, k[3]}] = true
		case len(k) == 3 && k[0] == "http" && k[1] == "credentials":
			set[key{"http.credentials", k[2]}] = true
		case len(k) == 4 && k[0] == "http" && k[1] == "apps":
			set[key{`http.apps."NAME"`, k[3]}] = true
		default:
			t.Errorf("%s: key %q is nested deeper than a host's", example, k)
		}
	}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		if m := tableLine.FindStringSubmatch(l); m != nil {
			section = m[1]
			switch {
			case section == "hosts":
				section = `hosts."HOST"` + m[2]
			case m[3] != "":
				section += `.apps."NAME"`
			case m[4] != "":
				section += ".credentials"
			}
		} else if m := commentedKey.FindStringSubmatch(l); m != nil {
			set[key{section, m[1]}] = true
		}
	}
	return slices.SortedFunc(maps.Keys(set), func(a, b key) int { return strings.Compare(a.String(), b.String()) })
}

// known reports whether the configuration parser knows k: a file setting
// it is not refused as holding an unknown key (it may be refused for its
// value, which the test does not try to get right).
func known(t *testing.T, k key) bool {
	t.Helper()
	var doc string
	switch {
	case k.section == "":
		doc = k.name + " = 0\n"
	case k.section == `hosts."HOST"`:
		doc = "[hosts.\"example.org\"]\n" + k.name + " = 0\n"
	case k.section == `hosts."HOST".jwt`:
		doc = "[hosts.\"example.org\".jwt]\n" + k.name + " = 0\n"
	case k.section == `http.apps."NAME"`:
		doc = "[http.apps.\"webapp\"]\n" + k.name + " = 0\n"
	default:
		doc = "[" + k.section + "]\n" + k.name + " = 0\n"
	}
	_, err := setup.Parse("man.toml", []byte(doc), config.Options{})
	return err == nil || !strings.Contains(err.Error(), "unknown key")
}

// TestConfigPage: tokenauthd.toml.5.md defines every option of
// config.toml.example and no other, once, and each is an option the
// configuration parser knows.
func TestConfigPage(t *testing.T) {
	// The probe must be able to say no, or the check below says nothing.
	if known(t, key{"daemon", "no_such_option"}) || known(t, key{`hosts."HOST"`, "no_such_option"}) {
		t.Fatal("the configuration parser no longer reports an unknown key as \"unknown key\": fix known()")
	}
	page := readConfigPage(t)
	if len(page) < 20 {
		t.Fatalf("%s: %d options found; the page's format may have changed", configPage, len(page))
	}
	seen := map[key]bool{}
	for _, k := range page {
		if seen[k] {
			t.Errorf("%s: %s is defined twice", configPage, k)
		}
		seen[k] = true
		if !known(t, k) {
			t.Errorf("%s: %s is not an option: the configuration parser refuses it as unknown", configPage, k)
		}
	}
	ex := exampleKeys(t)
	for _, k := range ex {
		if !seen[k] {
			t.Errorf("%s: %s, in %s, is missing", configPage, k, filepath.Base(example))
		}
	}
	for _, k := range page {
		if !slices.Contains(ex, k) {
			t.Errorf("%s: %s is not in %s", configPage, k, filepath.Base(example))
		}
	}
}
