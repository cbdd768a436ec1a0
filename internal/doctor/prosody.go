package doctor

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/access"
	"github.com/tokenauthd/tokenauthd/internal/config"
)

// prosodyLua reads a prosody.cfg.lua with Prosody's own loader and prints
// what doctor needs as JSON.
//
//go:embed prosody.lua
var prosodyLua string

// Bounds on reading Prosody's configuration through Lua.
const (
	luaTimeout = 10 * time.Second
	maxLuaOut  = 1 << 20
)

// prosodyLaunchers are where Prosody's programs are: their first lines
// name the Lua interpreter and the directories Prosody was built with.
var prosodyLaunchers = []string{"/usr/bin/prosodyctl", "/usr/bin/prosody", "/usr/local/bin/prosodyctl", "/usr/local/bin/prosody"}

// PackageModuleDir is where tokenauthd's package installs the Prosody
// module.
const PackageModuleDir = "/usr/share/tokenauthd/prosody"

const moduleFile = "mod_auth_tokenauthd.lua"

// prosodyInstall is a Prosody installation: its interpreter and the
// directories its launcher sets.
type prosodyInstall struct {
	launcher  string
	lua       string
	sourceDir string
	pluginDir string
	dataDir   string
}

var cfgLine = regexp.MustCompile(`(?m)^\s*(CFG_SOURCEDIR|CFG_PLUGINDIR|CFG_DATADIR)\s*=\s*['"]([^'"\n]*)['"]`)

// findProsody reads Prosody's launcher: its #! line and CFG_* settings.
func (d *doctor) findProsody() (prosodyInstall, bool) {
	for _, l := range prosodyLaunchers {
		b, err := d.sys.ReadFile(l, 256<<10)
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(b), "\n")
		shebang, ok := strings.CutPrefix(first, "#!")
		if !ok {
			continue
		}
		f := strings.Fields(shebang)
		if len(f) > 1 && filepath.Base(f[0]) == "env" {
			f = f[1:]
		}
		if len(f) == 0 || !strings.HasPrefix(filepath.Base(f[0]), "lua") {
			continue
		}
		in := prosodyInstall{launcher: l, lua: f[0], sourceDir: "/usr/lib/prosody",
			pluginDir: "/usr/lib/prosody/modules", dataDir: "/var/lib/prosody"}
		for _, m := range cfgLine.FindAllStringSubmatch(string(b), -1) {
			switch m[1] {
			case "CFG_SOURCEDIR":
				in.sourceDir = m[2]
			case "CFG_PLUGINDIR":
				in.pluginDir = m[2]
			case "CFG_DATADIR":
				in.dataDir = m[2]
			}
		}
		return in, true
	}
	return prosodyInstall{}, false
}

// prosodyDump is what prosody.lua prints.
type prosodyDump struct {
	OK     bool   `json:"ok"`
	Error  string `json:"error"` // "parser" or "file"
	Line   int    `json:"line"`
	Global struct {
		PluginPaths         []string `json:"plugin_paths"`
		InstallerPluginPath string   `json:"installer_plugin_path"`
		DataPath            string   `json:"data_path"`
		ModulesEnabled      []string `json:"modules_enabled"`
		ModulesDisabled     []string `json:"modules_disabled"`
	} `json:"global"`
	Hosts []prosodyHost `json:"hosts"`
}

// prosodyHost is a VirtualHost or Component: the modules it sets itself,
// and its options, its own or else the global ones.
type prosodyHost struct {
	Name            string         `json:"name"`
	Component       bool           `json:"component"`
	Enabled         bool           `json:"enabled"`
	ModulesEnabled  []string       `json:"modules_enabled"`
	ModulesDisabled []string       `json:"modules_disabled"`
	Options         map[string]any `json:"options"`
}

// luaQuote quotes s as a Lua string literal.
func luaQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			fmt.Fprintf(&b, `\%03d`, c)
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

// loaded is what Prosody's loader read: the files it opened and the
// directories it listed, in order.
type loaded struct {
	files, dirs []string
}

// readProsody runs Prosody's loader on path as the user as, and returns
// what it printed: the configuration, and the files it read (those too
// when it failed: the lines that name them come first).
func (d *doctor) readProsody(in prosodyInstall, path string, as User) (*prosodyDump, loaded, error) {
	ctx, cancel := context.WithTimeout(d.ctx, luaTimeout)
	defer cancel()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, loaded{}, err
	}
	// Lua refuses a -e chunk that starts with '-': the settings come first.
	chunk := "DOCTOR_SOURCEDIR = " + luaQuote(in.sourceDir) + " DOCTOR_CONFIG = " + luaQuote(abs) + "\n" + prosodyLua
	// -E: the interpreter ignores LUA_INIT and LUA_PATH.
	out, _, err := d.sys.Run(ctx, in.lua, []string{"-E", "-e", chunk}, as, maxLuaOut)
	result, read := parseLoaderOutput(out)
	if err != nil {
		// Its standard error may quote the file: it is not shown.
		return nil, read, fmt.Errorf("%s could not run Prosody's configuration loader as %s: %v", in.lua, as.Name, err)
	}
	var dump prosodyDump
	if err := json.Unmarshal(result, &dump); err != nil {
		return nil, read, fmt.Errorf("no result doctor can read from Prosody's configuration loader: %v", err)
	}
	return &dump, read, nil
}

// maxLoaded bounds the files and directories doctor takes from the
// loader's output.
const maxLoaded = 256

// parseLoaderOutput splits prosody.lua's output: "file" and "dir" lines,
// each a JSON string, and the result, its last line that is a JSON
// object. Lines of any other kind (what the configuration printed) are
// skipped.
func parseLoaderOutput(out []byte) (result []byte, read loaded) {
	seen := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "{") {
			result = []byte(line)
			continue
		}
		kind, quoted, ok := strings.Cut(line, " ")
		var p string
		if !ok || (kind != "file" && kind != "dir") || json.Unmarshal([]byte(quoted), &p) != nil || p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join("/", p) // the loader runs from /
		}
		if p = filepath.Clean(p); seen[kind+p] || len(read.files)+len(read.dirs) >= maxLoaded {
			continue
		}
		seen[kind+p] = true
		if kind == "file" {
			read.files = append(read.files, p)
		} else {
			read.dirs = append(read.dirs, p)
		}
	}
	return result, read
}

// loaderUser is whom Prosody's configuration is loaded as: Prosody's own
// user (with the groups its unit gives it), never root; nobody if that
// user is root or unknown.
func (d *doctor) loaderUser(pr *service) (User, error) {
	if pr.userErr == "" && pr.user.UID > 0 {
		return pr.user, nil
	}
	u, err := d.sys.LookupUser("nobody")
	if err != nil {
		return User{}, fmt.Errorf("no user nobody to load Prosody's configuration as, in place of Prosody's user %s", pr.user.Name)
	}
	u.GIDs = []int{u.GID}
	return u, nil
}

// str reads a string option, def if unset or not a string.
func (h prosodyHost) str(key, def string) string {
	if s, ok := h.Options[key].(string); ok {
		return s
	}
	return def
}

// seconds reads a number of seconds, def if unset.
func (h prosodyHost) seconds(key string, def time.Duration) time.Duration {
	if f, ok := h.Options[key].(float64); ok && f > 0 && f < 1e12 {
		return time.Duration(f * float64(time.Second))
	}
	return def
}

// modules is the set of modules Prosody loads on a host, as its module
// manager computes it: the global modules_enabled less the global
// modules_disabled, plus the host's own, less the host's disabled.
func (p *prosodyDump) modules(h prosodyHost) map[string]bool {
	m := map[string]bool{}
	for _, n := range p.Global.ModulesEnabled {
		m[n] = true
	}
	for _, n := range p.Global.ModulesDisabled {
		delete(m, n)
	}
	for _, n := range h.ModulesEnabled {
		m[n] = true
	}
	for _, n := range h.ModulesDisabled {
		delete(m, n)
	}
	return m
}

// checkProsody reads prosody.cfg.lua through Prosody's own loader and
// reports what keeps tokenauthd's module from working or lets a token
// count more than once.
func (d *doctor) checkProsody(path string) {
	in, ok := d.findProsody()
	if !ok {
		d.add(Finding{Severity: Note, File: path,
			Message: "Prosody is not installed (no prosodyctl or prosody found): its configuration cannot be read the way Prosody reads it, and is not checked"})
		return
	}
	pr := d.lookupService("Prosody", "prosody.service", "prosody")
	as, err := d.loaderUser(pr)
	if err != nil {
		d.checkWriters(prosodyTrust, path, loaded{})
		d.add(Finding{Severity: Error, File: path, Message: err.Error() + ": it is not read"})
		return
	}
	dump, read, err := d.readProsody(in, path, as)
	d.checkWriters(prosodyTrust, path, read)
	if err != nil {
		d.add(Finding{Severity: Error, File: path, Message: err.Error(), Fix: sh("prosodyctl", "--config", path, "check", "config")})
		return
	}
	if !dump.OK {
		msg, fix := "Prosody cannot load it", sh("prosodyctl", "--config", path, "check", "config")+" tells why"
		if dump.Error == "file" {
			msg, fix = "Prosody's loader, run as "+as.Name+", cannot open it", "let "+as.Name+" read it, as Prosody must (root:prosody, 0640)"
		}
		d.add(Finding{Severity: Error, File: path, Line: dump.Line, Message: msg, Fix: fix})
		return
	}
	var module, external []prosodyHost
	served := map[string]bool{}
	for _, h := range dump.Hosts {
		if h.Component || !h.Enabled {
			continue
		}
		if !validDomain(h.Name) {
			d.add(Finding{Severity: Error, File: path, Key: "VirtualHost", Message: invalidHost(h.Name)})
			continue
		}
		served[h.Name] = true
		switch h.str("authentication", "internal_hashed") {
		case "tokenauthd":
			module = append(module, h)
		case "external_insecure", "external":
			external = append(external, h)
		default:
			if d.tad != nil && slices.Contains(d.tad.hosts, h.Name) {
				d.add(Finding{Severity: Error, File: path, Key: "VirtualHost " + strconv.Quote(h.Name) + ": authentication",
					Message: fmt.Sprintf("tokenauthd has secrets for %s, but Prosody authenticates it with %q: its tokens are refused", h.Name, h.str("authentication", "internal_hashed")),
					Fix:     `authentication = "tokenauthd" (globally, or under the VirtualHost)`})
			}
		}
	}
	if d.tad != nil {
		for _, h := range d.tad.hosts {
			if !served[h] && !d.ejabberdServes[h] {
				d.add(Finding{Severity: Warning, File: d.tad.path, Key: fmt.Sprintf("hosts.%q", h),
					Message: fmt.Sprintf("tokenauthd has secrets for %s, which Prosody (%s) does not serve", h, path),
					Fix:     fmt.Sprintf(`VirtualHost %q with authentication = "tokenauthd" in %s, or remove the section`, h, path)})
			}
		}
	}
	if len(module) == 0 && len(external) == 0 {
		d.add(Finding{Severity: Note, File: path, Key: "authentication",
			Message: `no VirtualHost authenticates with tokenauthd (authentication = "tokenauthd"): Prosody does not ask it`})
	}
	if len(module) > 0 {
		d.checkProsodyModule(in, dump, path, pr, module)
	}
	for _, h := range external {
		d.checkProsodyExternal(path, pr, h)
	}
	d.checkProsodyFast(dump, path, append(slices.Clone(module), external...))
}

// checkProsodyModule checks the hosts that use mod_auth_tokenauthd: that
// tokenauthd has their secrets, that Prosody finds and may read the
// module, and that it dials the daemon's socket, which it may use.
func (d *doctor) checkProsodyModule(in prosodyInstall, dump *prosodyDump, path string, pr *service, hosts []prosodyHost) {
	if d.tad != nil {
		for _, h := range hosts {
			if !slices.Contains(d.tad.hosts, h.Name) {
				d.add(Finding{Severity: Error, File: path, Key: "VirtualHost " + strconv.Quote(h.Name) + ": authentication",
					Message: fmt.Sprintf("%s authenticates with tokenauthd, whose configuration %s has no [hosts.%q] section: every login there is refused (unknown_host)", h.Name, d.tad.path, h.Name),
					Fix:     sh("tokenauthd", "gen-secrets", h.Name) + " >> " + sh(d.tad.path) + " (and give the application its secrets), then systemctl reload tokenauthd"})
			}
		}
	}
	d.checkProsodyModuleFile(in, dump, path, pr)
	bySocket := map[string][]string{}
	for _, h := range hosts {
		s := h.str("tokenauthd_socket", config.DefaultSocket)
		bySocket[s] = append(bySocket[s], h.Name)
	}
	for _, s := range slices.Sorted(maps.Keys(bySocket)) {
		at := finding{file: path, key: "tokenauthd_socket"}
		if why := pr.unit.hides(s); why != "" {
			d.addAt(at, Error, fmt.Sprintf("%s %s %s, but %s", hostList(bySocket[s]), dials(bySocket[s]), s, why),
				"keep the socket outside /tmp: the default, /run/tokenauthd/tokenauthd.sock")
		}
		if daemon := d.daemonSocket(); filepath.Clean(s) != filepath.Clean(daemon) {
			where := "the default"
			if d.tad != nil {
				where = "[daemon] socket in " + d.tad.path
			}
			d.addAt(at, Error, fmt.Sprintf("%s %s %s, but the daemon listens on %s (%s): every login is refused", hostList(bySocket[s]), dials(bySocket[s]), s, daemon, where),
				fmt.Sprintf("tokenauthd_socket = %q", daemon))
		}
		c := socketClient{svc: pr, socket: s, host: bySocket[s][0], file: path, key: "tokenauthd_socket"}
		d.clients = append(d.clients, c)
		d.checkGroup(c)
	}
}

// dials is the verb for hostList(hosts).
func dials(hosts []string) string {
	if len(hosts) == 1 {
		return "dials"
	}
	return "dial"
}

// checkProsodyModuleFile checks that Prosody finds mod_auth_tokenauthd.lua
// where it looks for modules, and may read it.
func (d *doctor) checkProsodyModuleFile(in prosodyInstall, dump *prosodyDump, path string, pr *service) {
	var dirs []string
	for _, p := range dump.Global.PluginPaths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(in.sourceDir, p)
		}
		dirs = append(dirs, p)
	}
	installer := dump.Global.InstallerPluginPath
	if installer == "" {
		installer = "custom_plugins"
	}
	if !filepath.IsAbs(installer) {
		installer = filepath.Join(in.dataDir, installer)
	}
	dirs = append(dirs, installer, in.pluginDir)
	for _, dir := range dirs {
		for _, f := range []string{filepath.Join(dir, moduleFile), filepath.Join(dir, "mod_auth_tokenauthd", moduleFile)} {
			if _, err := d.sys.Stat(f); err != nil {
				continue
			}
			if why := d.access(pr, f, access.Read); why != "" {
				d.add(Finding{Severity: Error, File: path, Key: "plugin_paths",
					Message: "Prosody cannot read " + f + ": " + why, Fix: sh("chmod", "644", f) + " (and let " + pr.user.Name + " through its directories)"})
			}
			return
		}
	}
	fix := "install -D -m 644 prosody/" + moduleFile + " /usr/local/lib/prosody/modules/" + moduleFile +
		`, and plugin_paths = { "/usr/local/lib/prosody/modules" }`
	if _, err := d.sys.Stat(filepath.Join(PackageModuleDir, moduleFile)); err == nil {
		fix = fmt.Sprintf("plugin_paths = { %q } (where tokenauthd's package installs it)", PackageModuleDir)
	}
	d.add(Finding{Severity: Error, File: path, Key: "plugin_paths",
		Message: fmt.Sprintf("Prosody does not find %s in its plugin paths (%s): it cannot load authentication = \"tokenauthd\", and no one logs in",
			moduleFile, strings.Join(dirs, ", ")),
		Fix: fix})
}

// checkProsodyExternal checks a host on mod_auth_external_insecure: a
// stdin/stdout helper without a shared replay store forgets, at each
// restart of the helper, the tokens it accepted, and each of several
// helpers knows only its own.
func (d *doctor) checkProsodyExternal(path string, pr *service, h prosodyHost) {
	at := finding{file: path, key: "VirtualHost " + strconv.Quote(h.Name) + ": external_auth_command"}
	cmdLine := h.str("external_auth_command", "")
	if cmdLine == "" {
		d.addAt(at, Error, h.Name+" authenticates with mod_auth_external_insecure but external_auth_command is not set", `external_auth_command = "/usr/bin/tokenauthd"`)
		return
	}
	// The module runs the command as one path, without arguments.
	cmd := d.helperCommand(pr, []string{cmdLine})
	if cmd.foreign {
		d.addAt(at, Note, fmt.Sprintf("%s authenticates with %s, which does not run tokenauthd: not checked", h.Name, cmdLine), "")
		return
	}
	if d.checkProgram(pr, cmd, at) {
		return
	}
	if cmd.relay {
		d.checkRelay(pr, cmd, at, []string{h.Name})
		return
	}
	store := "memory"
	if cmd.tokenauthd {
		cfg := cmd.config
		if cfg == "" {
			cfg = config.DefaultPath
		}
		if hc := d.checkHelperConfig(pr, cfg, at); hc != nil {
			store = hc.store
		}
	}
	if store == "redis" {
		return
	}
	what := "its replay store is the helper's memory"
	if !cmd.tokenauthd {
		what = "it is not tokenauthd, and doctor cannot tell whether it shares a replay store"
	}
	d.addAt(at, Warning, fmt.Sprintf("%s logs in through mod_auth_external_insecure and %s, %s: the tokens it accepted are forgotten whenever the helper restarts, "+
		"and each helper process knows only its own", h.Name, cmd.prog, what),
		`use tokenauthd's module (authentication = "tokenauthd") and the daemon, or give the helper [replay] store = "redis"`)
}

// prosodyTokenModules are Prosody's modules that turn one login into a
// token the client can log in with again, without tokenauthd, and their
// lifetime option and default.
var prosodyTokenModules = []struct {
	module, option string
	def            time.Duration
	what           string
}{
	{"sasl2_fast", "sasl2_fast_token_ttl", 21 * 24 * time.Hour, "a FAST token (XEP-0484)"},
	{"http_oauth2", "oauth2_refresh_token_ttl", 7 * 24 * time.Hour, "an OAuth2 refresh token"},
}

// checkProsodyFast warns of SASL2/FAST and OAuth2: one login with a
// single-use token then gets the client a token it can log in with again
// and again.
func (d *doctor) checkProsodyFast(dump *prosodyDump, path string, hosts []prosodyHost) {
	for _, tm := range prosodyTokenModules {
		byLife := map[time.Duration][]string{}
		for _, h := range hosts {
			if dump.modules(h)[tm.module] {
				life := h.seconds(tm.option, tm.def)
				byLife[life] = append(byLife[life], h.Name)
			}
		}
		for _, life := range slices.Sorted(maps.Keys(byLife)) {
			lifetime := humanDuration(life) + " (" + tm.option + ")"
			if life == tm.def {
				lifetime = humanDuration(life) + " (" + tm.option + "'s default)"
			}
			d.add(Finding{Severity: Warning, File: path, Key: "modules_enabled: " + tm.module,
				Message: fmt.Sprintf("mod_%s is enabled for %s: one login with a single-use token gets the client %s it can log in with again and again, without tokenauthd, for %s",
					tm.module, hostList(byLife[life]), tm.what, lifetime),
				Fix: fmt.Sprintf("remove %q from modules_enabled, or set %s as short as you can accept", tm.module, tm.option)})
		}
	}
}
