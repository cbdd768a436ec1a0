package doctor

import (
	"bytes"
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fuzzcorpus"
)

func TestShellWords(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{"/usr/bin/tokenauthd connect -protocol ejabberd", []string{"/usr/bin/tokenauthd", "connect", "-protocol", "ejabberd"}},
		// Quotes and backslashes quote, as the shell's do.
		{`"/opt/my dir/tokenauthd" -config '/etc/a b.toml'`, []string{"/opt/my dir/tokenauthd", "-config", "/etc/a b.toml"}},
		{`/usr/bin/tokenauthd -config /etc/a\ b.toml`, []string{"/usr/bin/tokenauthd", "-config", "/etc/a b.toml"}},
		{`a"b"'c'd`, []string{"abcd"}},
		{`"say \"hi\" \n"`, []string{`say "hi" \n`}},
		{`'' x`, []string{"", "x"}},
		// An operator or an expansion ends what doctor follows.
		{"/usr/bin/tokenauthd 2>/var/log/x.log", []string{"/usr/bin/tokenauthd", "2"}},
		{"/usr/bin/tokenauthd -config $HOME/c", []string{"/usr/bin/tokenauthd", "-config"}},
		{"tokenauthd; rm -rf /", []string{"tokenauthd"}},
		{"tokenauthd # a comment", []string{"tokenauthd"}},
		{"a#b", []string{"a#b"}},
		// Unclosed quotes: what came before.
		{"x 'y", []string{"x"}},
		{"", nil},
		{"   \t ", nil},
	}
	for _, tt := range tests {
		if got := shellWords(tt.line); !slices.Equal(got, tt.want) {
			t.Errorf("shellWords(%q) = %q, want %q", tt.line, got, tt.want)
		}
	}
}

func TestHelperCommand(t *testing.T) {
	s := cleanMachine(t)
	s.files["/usr/local/bin/auth.sh"] = fakeFile{mode: 0o755, data: "#!/bin/sh\n# relay to the daemon\nexec /usr/bin/tokenauthd connect -socket=/run/t.sock \"$@\"\n"}
	s.files["/usr/local/bin/other"] = fakeFile{mode: 0o755, data: "#!/bin/sh\nexec /usr/bin/python3 /opt/auth.py\n"}
	s.files["/usr/local/bin/secret.sh"] = fakeFile{mode: 0o711, data: "#!/bin/sh\nexec /usr/bin/tokenauthd connect -socket=/run/t.sock\n"}
	d := newDoctor(context.Background(), Options{System: s})
	ej := d.lookupService("ejabberd", "ejabberd.service", "ejabberd")
	tests := []struct {
		line string
		want helperCmd
	}{
		{"/usr/bin/tokenauthd connect -protocol ejabberd", helperCmd{prog: "/usr/bin/tokenauthd", tokenauthd: true, relay: true}},
		{"/usr/bin/tokenauthd -config /etc/x.toml -protocol ejabberd",
			helperCmd{prog: "/usr/bin/tokenauthd", tokenauthd: true, config: "/etc/x.toml", configExplicit: true}},
		{"/usr/bin/tokenauthd connect --socket /run/s.sock --config=/etc/c.toml",
			helperCmd{prog: "/usr/bin/tokenauthd", tokenauthd: true, relay: true, socket: "/run/s.sock", config: "/etc/c.toml", configExplicit: true}},
		// Flags end at the first argument.
		{"/usr/bin/tokenauthd connect x -socket /s", helperCmd{prog: "/usr/bin/tokenauthd", tokenauthd: true, relay: true}},
		// A wrapper script that runs tokenauthd.
		{"/usr/local/bin/auth.sh", helperCmd{prog: "/usr/local/bin/auth.sh", tokenauthd: true, relay: true, socket: "/run/t.sock"}},
		// Another program, and one doctor cannot read.
		{"/usr/local/bin/other", helperCmd{prog: "/usr/local/bin/other", foreign: true}},
		{"/usr/bin/python3 /opt/auth.py", helperCmd{prog: "/usr/bin/python3"}},
		// A script ejabberd's user may not read: doctor does not read it.
		{"/usr/local/bin/secret.sh", helperCmd{prog: "/usr/local/bin/secret.sh"}},
		{"", helperCmd{}},
	}
	for _, tt := range tests {
		if got := d.helperCommand(ej, shellWords(tt.line)); got != tt.want {
			t.Errorf("helperCommand(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func TestParseUnit(t *testing.T) {
	u := parseUnit("ejabberd.service", []UnitFile{
		{Path: "/lib/systemd/system/ejabberd.service", Text: debianEjabberdUnit},
		{Path: "/etc/systemd/system/ejabberd.service.d/a.conf", Text: "[Service]\nSupplementaryGroups=a b\nSupplementaryGroups=c\n"},
		// An empty assignment resets a list; a later one wins.
		{Path: "/etc/systemd/system/ejabberd.service.d/b.conf", Text: "[Service]\nSupplementaryGroups=\nSupplementaryGroups=tokenauthd-clients \\\n  d\nPrivateTmp=no\nProtectHome=read-only\n[Install]\nUser=nobody\n"},
	})
	if u.user != "ejabberd" || !slices.Equal(u.supplementaryGroups, []string{"tokenauthd-clients", "d"}) || u.privateTmp || u.protectHome != "read-only" {
		t.Errorf("parseUnit = %+v", u)
	}
	if why := u.hides("/tmp/s.sock"); why != "" {
		t.Errorf("PrivateTmp=no hides /tmp: %s", why)
	}
	if why := u.hides("/root/x"); why != "" {
		t.Errorf("ProtectHome=read-only hides /root: %s", why)
	}
	for _, tt := range []struct{ text, want string }{
		{"[Service]\nExecStart=/usr/bin/tokenauthd serve -config /etc/t.toml\n", "/etc/t.toml"},
		{"[Service]\nExecStart=/usr/bin/tokenauthd serve\nEnvironment=\"TOKENAUTHD_CONFIG=/etc/e.toml\" X=1\n", "/etc/e.toml"},
		{"[Service]\nExecStart=/usr/bin/tokenauthd serve --config=/a\nExecStart=\nExecStart=-/usr/bin/tokenauthd serve\n", "/default"},
	} {
		if got := parseUnit("t", []UnitFile{{Text: tt.text}}).configPath("/default"); got != tt.want {
			t.Errorf("configPath of %q = %q, want %q", tt.text, got, tt.want)
		}
	}
	d := parseUnit("ejabberd.service", []UnitFile{{Text: debianEjabberdUnit}})
	for path, hidden := range map[string]bool{"/tmp/s.sock": true, "/var/tmp/x": true, "/tmpx/s": false, "/home/u/t": true,
		"/root": true, "/run/user/0/s": true, "/run/tokenauthd/tokenauthd.sock": false, "relative/tmp": false} {
		if got := d.hides(path) != ""; got != hidden {
			t.Errorf("hides(%q) = %v, want %v", path, got, hidden)
		}
	}
}

func TestTrustedBy(t *testing.T) {
	ej := User{Name: "ejabberd", UID: 105}
	for _, tt := range []struct {
		fi  FileInfo
		bad string
	}{
		{FileInfo{Mode: 0o640}, ""},
		{FileInfo{Mode: 0o600, UID: 105}, ""},
		{FileInfo{Mode: 0o660}, "writable by others"},
		{FileInfo{Mode: 0o602}, "writable by others"},
		{FileInfo{Mode: 0o600, UID: 7}, "owned by user 7"},
	} {
		if got := trustedBy(tt.fi, ej); (tt.bad == "") != (got == "") || !strings.Contains(got, tt.bad) {
			t.Errorf("trustedBy(%v, uid %d) = %q, want %q", tt.fi.Mode, tt.fi.UID, got, tt.bad)
		}
	}
}

func TestEjTimeout(t *testing.T) {
	day := 24 * time.Hour
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2592000", 30 * day, true},
		{"14days", 14 * day, true},
		{"14 days", 14 * day, true},
		{"1 h", time.Hour, true},
		{"30 MIN", 30 * time.Minute, true},
		{"500ms", 500 * time.Millisecond, true},
		{"1d", day, true},
		{"0", 0, false},
		{"-5", 0, false},
		{"days", 0, false},
		{"5 fortnights", 0, false},
		{"99999999999999999999", 0, false},
	} {
		got, ok := ejTimeout(tt.in, time.Second)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ejTimeout(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	for d, want := range map[time.Duration]string{30 * day: "30 days", day: "1 day", 36 * time.Hour: "36 hours", 90 * time.Minute: "90 minutes", 90 * time.Second: "1m30s"} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestLuaQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/prosody/prosody.cfg.lua": `"/etc/prosody/prosody.cfg.lua"`,
		`a"b\c`:                        `"a\034b\092c"`,
		"x\ny]]--\xff":                 `"x\010y]]--\255"`,
	} {
		if got := luaQuote(in); got != want {
			t.Errorf("luaQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// FuzzEjabberd: any ejabberd.yml gives a report of whole lines that ends
// with the count, and exit 1 exactly when it holds an error; never a
// panic or a hang.
func FuzzEjabberd(f *testing.F) {
	fuzzcorpus.Check(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := cleanMachine(t)
		s.files[DefaultEjabberd] = fakeFile{mode: 0o644, data: string(data)}
		// Included files and wrapper scripts resolve to this one.
		s.files["/etc/ejabberd/inc.yml"] = fakeFile{mode: 0o644, data: string(data)}
		var out bytes.Buffer
		code := Check(context.Background(), Options{Stdout: &out, System: s})
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "doctor: ") {
			t.Fatalf("last line %q", last)
		}
		errs := 0
		for _, l := range lines[:len(lines)-1] {
			if strings.HasPrefix(l, "error: ") {
				errs++
			} else if !strings.HasPrefix(l, "warning: ") && !strings.HasPrefix(l, "note: ") && !strings.HasPrefix(l, "doctor: ") {
				t.Fatalf("not a finding: %q", l)
			}
		}
		if (errs > 0) != (code == 1) {
			t.Fatalf("exit %d with %d errors:\n%s", code, errs, out.String())
		}
	})
}

func TestValidDomain(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"example.org", true},
		{"localhost", true},
		{"chat-1.example.org", true},
		// Folded to lower case first, as both servers fold it.
		{"Example.ORG", true},
		// A name in another script.
		{"exämple.org", true},
		{"пример.рф", true},
		{"xn--exmple-cua.org", true},
		// Shell syntax, spaces, quotes, control characters.
		{"x.org; id > /tmp/pwned #", false},
		{"x.org$(id)", false},
		{"x.org`id`", false},
		{"x'.org", false},
		{`x".org`, false},
		{"x.org\nid", false},
		{"x .org", false},
		{"x.org\u00a0", false},
		{"x.org|id", false},
		{"x.org&", false},
		{"*.example.org", false},
		// Bidirectional and zero-width tricks, full-width letters.
		{"x.org\u202egro", false},
		{"exa\u200bmple.org", false},
		{"ｅxample.org", false},
		// Empty labels, hyphens at a label's ends, lengths.
		{"", false},
		{".", false},
		{"example..org", false},
		{"-example.org", false},
		{strings.Repeat("a", 64) + ".org", false},
		{strings.Repeat("a.", 127) + "org", false},
	}
	for _, tt := range tests {
		if got := validDomain(tt.name); got != tt.want {
			t.Errorf("validDomain(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestSh: each word sh writes is read back by a real shell as that word,
// whatever it holds.
func TestSh(t *testing.T) {
	words := []string{"tokenauthd", "gen-secrets", "example.org", "exämple.org", "", "a b", "it's", `"q"`, "$(id)", "`id`",
		"x; id #", "a\nb", "a\\b", "!x", "~root", "*", "-config", "/etc/tokenauthd/config.toml", "root:ejabberd"}
	if got, want := sh("chmod", "0640", "/etc/a b"), `chmod 0640 '/etc/a b'`; got != want {
		t.Errorf("sh = %s, want %s", got, want)
	}
	if got, want := sh("tokenauthd", "gen-secrets", "example.org"), "tokenauthd gen-secrets example.org"; got != want {
		t.Errorf("sh = %s, want %s", got, want)
	}
	out, err := exec.Command("/bin/sh", "-c", `printf '%s\0' `+sh(words...)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00"); !slices.Equal(got, words) {
		t.Errorf("the shell read %q, want %q", got, words)
	}
}
