package doctor

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenauthd/tokenauthd/internal/access"
	"github.com/tokenauthd/tokenauthd/internal/config"
)

// maxYAML bounds an ejabberd configuration file, and maxIncludes the files
// it may include (include_config_file), nested or not.
const (
	maxYAML     = 1 << 20
	maxIncludes = 16
)

// ejOpt is one option of ejabberd's configuration and where it was set.
type ejOpt struct {
	node *yaml.Node
	file string
}

// ejConfig is ejabberd's configuration as ejabberd merges it: the top
// level, with included files and macros, and the options of each host.
type ejConfig struct {
	global map[string]ejOpt
	// hostConfig and appendConfig hold host_config and
	// append_host_config, by host (lower case), then option.
	hostConfig, appendConfig map[string]map[string]ejOpt
	macros                   map[string]*yaml.Node
	files                    int
	// read are the included files read, in order.
	read []string
	// reader is ejabberd's user: an included file it cannot read is not
	// read (nil: every file is).
	reader *service
}

// ejInclude is a file include_config_file names, with the options it may
// set.
type ejInclude struct {
	path            string
	allow, disallow []string
}

// readEjabberd reads an ejabberd.yml and the files it includes. allow, if
// not nil, keeps only those options of the file; disallow drops some.
func (d *doctor) readEjabberd(c *ejConfig, path string, allow, disallow []string) error {
	c.files++
	if c.files > maxIncludes {
		return fmt.Errorf("%s: more than %d files included", path, maxIncludes)
	}
	data, err := d.sys.ReadFile(path, maxYAML)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// The parser's messages give a line and what it expected,
		// quoting no more than a token.
		return fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: the top level is not a map of options", path, top.Line)
	}
	var includes []ejInclude
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := top.Content[i].Value, top.Content[i+1]
		if (allow != nil && !slices.Contains(allow, key)) || slices.Contains(disallow, key) {
			continue
		}
		switch key {
		case "define_macro":
			c.defineMacros(val)
		case "include_config_file":
			includes = append(includes, c.includes(val)...)
		case "host_config":
			c.hostOptions(c.hostConfig, val, path)
		case "append_host_config":
			c.hostOptions(c.appendConfig, val, path)
		default:
			if _, ok := c.global[key]; !ok {
				c.global[key] = ejOpt{val, path}
			}
		}
	}
	for _, inc := range includes {
		p := inc.path
		// ejabberd resolves a relative path from its working directory,
		// which doctor does not know: it takes the including file's.
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		// ejabberd reads it as its user: what that user may not read,
		// doctor does not read either, nor quote.
		if c.reader != nil {
			if why := d.access(c.reader, p, access.Read); why != "" {
				return fmt.Errorf("%s: ejabberd, run as %s, cannot read it (%s): doctor does not read it either", p, c.reader.user.Name, why)
			}
		}
		c.read = append(c.read, p)
		if err := d.readEjabberd(c, p, inc.allow, inc.disallow); err != nil {
			return err
		}
	}
	return nil
}

// defineMacros adds define_macro's macros (the first definition wins).
func (c *ejConfig) defineMacros(val *yaml.Node) {
	m := c.resolve(val)
	if m.Kind != yaml.MappingNode {
		return
	}
	for j := 0; j+1 < len(m.Content); j += 2 {
		if _, ok := c.macros[m.Content[j].Value]; !ok {
			c.macros[m.Content[j].Value] = m.Content[j+1]
		}
	}
}

// includes returns the files include_config_file names: a path, a list,
// or a map of paths to their allow_only and disallow.
func (c *ejConfig) includes(val *yaml.Node) []ejInclude {
	var out []ejInclude
	v := c.resolve(val)
	switch v.Kind {
	case yaml.ScalarNode:
		out = append(out, ejInclude{path: v.Value})
	case yaml.SequenceNode:
		for _, f := range v.Content {
			out = append(out, ejInclude{path: c.resolve(f).Value})
		}
	case yaml.MappingNode:
		for j := 0; j+1 < len(v.Content); j += 2 {
			inc := ejInclude{path: v.Content[j].Value}
			opts := c.resolve(v.Content[j+1])
			inc.allow, inc.disallow = c.strings(c.field(opts, "allow_only")), c.strings(c.field(opts, "disallow"))
			if inc.allow == nil && c.field(opts, "allow_only") != nil {
				inc.allow = []string{}
			}
			out = append(out, inc)
		}
	}
	return out
}

// hostOptions adds host_config's or append_host_config's options, by
// host, into into (the first setting of an option wins).
func (c *ejConfig) hostOptions(into map[string]map[string]ejOpt, val *yaml.Node, path string) {
	hosts := c.resolve(val)
	if hosts.Kind != yaml.MappingNode {
		return
	}
	for j := 0; j+1 < len(hosts.Content); j += 2 {
		h := strings.ToLower(hosts.Content[j].Value)
		opts := c.resolve(hosts.Content[j+1])
		if into[h] == nil {
			into[h] = map[string]ejOpt{}
		}
		for k := 0; opts.Kind == yaml.MappingNode && k+1 < len(opts.Content); k += 2 {
			if _, ok := into[h][opts.Content[k].Value]; !ok {
				into[h][opts.Content[k].Value] = ejOpt{opts.Content[k+1], path}
			}
		}
	}
}

// maxResolve bounds the macros and aliases followed from one value.
const maxResolve = 16

// resolve follows YAML aliases and ejabberd's macros: a scalar that names
// a macro stands for its value.
func (c *ejConfig) resolve(n *yaml.Node) *yaml.Node {
	for range maxResolve {
		switch {
		case n == nil:
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
		case n.Kind == yaml.DocumentNode && len(n.Content) == 1:
			n = n.Content[0]
		case n.Kind == yaml.AliasNode:
			n = n.Alias
		case n.Kind == yaml.ScalarNode && c.macros[n.Value] != nil:
			n = c.macros[n.Value]
		default:
			return n
		}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
}

// field returns the value of key in a map node, nil if absent.
func (c *ejConfig) field(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// strings reads a list of strings, or one string, as ejabberd's
// list_or_single does.
func (c *ejConfig) strings(n *yaml.Node) []string {
	if n == nil {
		return nil
	}
	n = c.resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil
		}
		return []string{n.Value}
	case yaml.SequenceNode:
		var out []string
		for _, e := range n.Content {
			if e = c.resolve(e); e.Kind == yaml.ScalarNode {
				out = append(out, e.Value)
			}
		}
		return out
	}
	return nil
}

// ejBool reads a boolean as ejabberd does (true/false, yes/no, on/off,
// y/n).
func ejBool(n *yaml.Node) (value, ok bool) {
	if n.Kind != yaml.ScalarNode {
		return false, false
	}
	switch strings.ToLower(n.Value) {
	case "true", "yes", "on", "y":
		return true, true
	case "false", "no", "off", "n":
		return false, true
	}
	return false, false
}

// hostOpt is the value of an option for a host: host_config's, else
// append_host_config's, else the top level's. ok is false if none sets it.
func (c *ejConfig) hostOpt(host, key string) (o ejOpt, scope string, ok bool) {
	if o, ok := c.hostConfig[host][key]; ok {
		return o, "host_config: " + host, true
	}
	if o, ok := c.appendConfig[host][key]; ok {
		return o, "append_host_config: " + host, true
	}
	if o, ok := c.global[key]; ok {
		return o, "", true
	}
	return ejOpt{}, "", false
}

// modOpt is a module's options, and where it was enabled.
type modOpt struct {
	opts *yaml.Node
	file string
	line int
}

// modules returns the modules a host runs, each with its options and where
// it was enabled: the top level's and those of host_config and
// append_host_config (doctor takes the union: a module enabled anywhere
// for the host is reported).
func (c *ejConfig) modules(host string) map[string]modOpt {
	mods := map[string]modOpt{}
	for _, src := range []map[string]ejOpt{c.hostConfig[host], c.appendConfig[host], c.global} {
		o, ok := src["modules"]
		if !ok {
			continue
		}
		m := c.resolve(o.node)
		for i := 0; m.Kind == yaml.MappingNode && i+1 < len(m.Content); i += 2 {
			name := m.Content[i].Value
			if _, ok := mods[name]; !ok {
				mods[name] = modOpt{opts: m.Content[i+1], file: o.file, line: m.Content[i].Line}
			}
		}
	}
	return mods
}

// checkEjabberd reads ejabberd.yml and reports what lets a token in twice
// or keeps the helper from working.
func (d *doctor) checkEjabberd(path string) {
	ej := d.lookupService("ejabberd", "ejabberd.service", "ejabberd")
	c := &ejConfig{global: map[string]ejOpt{}, hostConfig: map[string]map[string]ejOpt{},
		appendConfig: map[string]map[string]ejOpt{}, macros: map[string]*yaml.Node{}, reader: ej}
	err := d.readEjabberd(c, path, nil, nil)
	d.checkWriters(ejabberdTrust(ej), path, loaded{files: c.read})
	if err != nil {
		d.add(Finding{Severity: Error, File: path, Message: "cannot read it as ejabberd would: " + errText(err),
			Fix: "ejabberdctl reload_config shows ejabberd's own reading"})
		return
	}
	var hosts []string
	if o, ok := c.global["hosts"]; ok {
		for _, h := range c.strings(o.node) {
			h = strings.ToLower(h)
			if !validDomain(h) {
				d.add(Finding{Severity: Error, File: o.file, Line: o.node.Line, Key: "hosts", Message: invalidHost(h)})
				continue
			}
			hosts = append(hosts, h)
		}
	}
	var external []string
	for _, h := range hosts {
		if o, _, ok := c.hostOpt(h, "auth_method"); ok && slices.Contains(c.strings(o.node), "external") {
			external = append(external, h)
		}
	}
	if len(external) == 0 {
		d.add(Finding{Severity: Note, File: path, Key: "auth_method",
			Message: "no host authenticates with external (auth_method: [external]): ejabberd does not ask tokenauthd"})
		return
	}
	// Hosts whose program is another than tokenauthd are not its
	// business.
	foreign := map[string][]string{}
	mine := external[:0:0]
	for _, h := range external {
		if o, _, ok := c.hostOpt(h, "extauth_program"); ok {
			prog := c.resolve(o.node).Value
			if d.helperCommand(ej, shellWords(prog)).foreign {
				foreign[prog] = append(foreign[prog], h)
				continue
			}
		}
		mine = append(mine, h)
	}
	for _, prog := range slices.Sorted(maps.Keys(foreign)) {
		d.add(Finding{Severity: Note, File: path, Key: "extauth_program",
			Message: fmt.Sprintf("%s: %q does not run tokenauthd: not checked", hostList(foreign[prog]), prog)})
	}
	if external = mine; len(external) == 0 {
		return
	}
	for _, h := range external {
		d.ejabberdServes[h] = true
	}
	d.checkEjabberdCache(c, path, external)
	d.checkEjabberdFast(c, external)
	d.checkEjabberdHelpers(c, path, ej, external)
}

// place is where in ejabberd's configuration an option that decides some
// hosts is set: hosts are grouped by it (map[place][]string), so that one
// mistake is reported once; sortedPlaces puts them in the file's order.
type place struct {
	file  string
	line  int
	scope string // "" for the top level
}

func hostList(hosts []string) string {
	if len(hosts) == 1 {
		return "host " + hosts[0]
	}
	return "hosts " + strings.Join(hosts, ", ")
}

// sortedPlaces returns the places of a grouping in the file's order.
func sortedPlaces[V any](m map[place]V) []place {
	return slices.SortedFunc(maps.Keys(m), func(a, b place) int {
		if a.file != b.file {
			return strings.Compare(a.file, b.file)
		}
		if a.line != b.line {
			return a.line - b.line
		}
		return strings.Compare(a.scope, b.scope)
	})
}

// checkEjabberdCache reports the authentication cache left on: ejabberd
// then answers a replayed token itself, for an hour, without asking
// tokenauthd (auth_use_cache; if unset, use_cache; by default true).
func (d *doctor) checkEjabberdCache(c *ejConfig, path string, external []string) {
	on := map[place][]string{}
	keys := map[place]string{}
	for _, h := range external {
		key := "auth_use_cache"
		o, scope, ok := c.hostOpt(h, key)
		if !ok {
			key = "use_cache"
			o, scope, ok = c.hostOpt(h, key)
		}
		if !ok {
			p := place{file: path}
			on[p] = append(on[p], h)
			keys[p] = "auth_use_cache"
			continue
		}
		n := c.resolve(o.node)
		if v, valid := ejBool(n); valid && !v {
			continue
		}
		p := place{file: o.file, line: o.node.Line, scope: scope}
		on[p] = append(on[p], h)
		keys[p] = key
	}
	for _, p := range sortedPlaces(on) {
		how := "is not set, and is on by default"
		switch {
		case p.line > 0 && keys[p] == "use_cache":
			how = "is not set, and use_cache turns it on"
		case p.line > 0:
			how = "is on"
		}
		key := keys[p]
		if p.scope != "" {
			key = p.scope + ": " + key
		}
		fix := "set auth_use_cache: false at the top level of " + path
		if p.scope != "" {
			fix = "set auth_use_cache: false under " + p.scope + " (or remove it there and set it false at the top level)"
		}
		d.add(Finding{Severity: Error, File: p.file, Line: p.line, Key: key,
			Message: fmt.Sprintf("ejabberd's authentication cache (auth_use_cache) %s for %s: ejabberd remembers a token that got in and lets it in again, "+
				"for an hour, without asking tokenauthd", how, hostList(on[p])),
			Fix: fix})
	}
}

// checkEjabberdFast warns of mod_auth_fast (ejabberd 24.12 and later): one
// login with a single-use token gets the client a FAST token it can log in
// with again and again, for token_lifetime (30 days by default).
func (d *doctor) checkEjabberdFast(c *ejConfig, external []string) {
	fast := map[place][]string{}
	lifetime := map[place]string{}
	for _, h := range external {
		m, ok := c.modules(h)["mod_auth_fast"]
		if !ok {
			continue
		}
		p := place{file: m.file, line: m.line}
		fast[p] = append(fast[p], h)
		life := "30 days (token_lifetime's default)"
		if lt := c.field(c.resolve(m.opts), "token_lifetime"); lt != nil {
			if dur, ok := ejTimeout(c.resolve(lt).Value, time.Second); ok {
				life = humanDuration(dur) + " (token_lifetime)"
			} else {
				life = fmt.Sprintf("token_lifetime (%q)", c.resolve(lt).Value)
			}
		}
		lifetime[p] = life
	}
	for _, p := range sortedPlaces(fast) {
		d.add(Finding{Severity: Warning, File: p.file, Line: p.line, Key: "modules: mod_auth_fast",
			Message: fmt.Sprintf("mod_auth_fast is enabled for %s: one login with a single-use token gets the client a FAST token "+
				"it can log in with again and again, without tokenauthd, for %s", hostList(fast[p]), lifetime[p]),
			Fix: "remove mod_auth_fast from modules, or set its token_lifetime as short as you can accept"})
	}
}

// ejTimeout reads an ejabberd timeout: a number in unit, or a number and
// a unit ("14days", "1 h", "30 min").
func ejTimeout(s string, unit time.Duration) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n <= 0 || n > 1<<40 {
		return 0, false
	}
	switch strings.ToLower(strings.TrimSpace(s[i:])) {
	case "":
	case "ms", "msec", "msecs", "millisec", "millisecs", "millisecond", "milliseconds":
		unit = time.Millisecond
	case "s", "sec", "secs", "second", "seconds":
		unit = time.Second
	case "m", "min", "mins", "minute", "minutes":
		unit = time.Minute
	case "h", "hour", "hours":
		unit = time.Hour
	case "d", "day", "days":
		unit = 24 * time.Hour
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// humanDuration says a lifetime in the largest whole unit.
func humanDuration(d time.Duration) string {
	day := 24 * time.Hour
	switch {
	case d >= day && d%day == 0:
		return plural(int(d/day), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return plural(int(d/time.Minute), "minute")
	}
	return d.String()
}

// checkEjabberdHelpers checks each extauth_program: that ejabberd's user
// can run it and read what it reads, that a stdin/stdout helper is not one
// of a pool that each remembers its own tokens, and that a relay reaches
// the daemon.
func (d *doctor) checkEjabberdHelpers(c *ejConfig, path string, ej *service, external []string) {
	type use struct {
		hosts []string
		pool  map[int][]string // pool size -> hosts
		poolP map[int]place
	}
	progs := map[place]*use{}
	programs := map[place]string{}
	for _, h := range external {
		o, scope, ok := c.hostOpt(h, "extauth_program")
		if !ok {
			d.add(Finding{Severity: Error, File: path, Key: "extauth_program",
				Message: "host " + h + " authenticates with external but no extauth_program is set",
				Fix:     `extauth_program: "/usr/bin/tokenauthd connect -protocol ejabberd"`})
			continue
		}
		p := place{file: o.file, line: o.node.Line, scope: scope}
		u := progs[p]
		if u == nil {
			u = &use{pool: map[int][]string{}, poolP: map[int]place{}}
			progs[p] = u
			programs[p] = c.resolve(o.node).Value
		}
		u.hosts = append(u.hosts, h)
		size, pp := d.sys.NumCPU(), place{file: path}
		if po, pscope, ok := c.hostOpt(h, "extauth_pool_size"); ok {
			if n, err := strconv.Atoi(c.resolve(po.node).Value); err == nil {
				size, pp = n, place{file: po.file, line: po.node.Line, scope: pscope}
			}
		}
		u.pool[size] = append(u.pool[size], h)
		u.poolP[size] = pp
	}
	for _, p := range sortedPlaces(progs) {
		u := progs[p]
		key := "extauth_program"
		if p.scope != "" {
			key = p.scope + ": " + key
		}
		at := finding{file: p.file, line: p.line, key: key}
		// ejabberd runs it through the shell.
		cmd := d.helperCommand(ej, shellWords(programs[p]))
		if stop := d.checkProgram(ej, cmd, at); stop {
			continue
		}
		if cmd.relay {
			d.checkRelay(ej, cmd, at, u.hosts)
			continue
		}
		d.checkStandalone(ej, cmd, at, u.hosts, u.pool, u.poolP)
	}
}

// finding is where a check's findings point.
type finding struct {
	file string
	line int
	key  string
}

func (d *doctor) addAt(at finding, sev Severity, msg, fix string) {
	d.add(Finding{Severity: sev, File: at.file, Line: at.line, Key: at.key, Message: msg, Fix: fix})
}

// checkProgram checks that the server's user can run the helper's program
// under its unit. It returns true only if there is no program at all:
// a program the server cannot run is one finding, and the helper's other
// settings are still checked, as they are reported once it runs.
func (d *doctor) checkProgram(svc *service, cmd helperCmd, at finding) bool {
	switch {
	case cmd.prog == "":
		d.addAt(at, Error, "no program to run", `extauth_program: "/usr/bin/tokenauthd connect -protocol ejabberd"`)
		return true
	case !filepath.IsAbs(cmd.prog):
		d.addAt(at, Note, cmd.prog+" is not an absolute path: the shell finds it in "+svc.name+"'s PATH, which doctor does not know; it is not checked",
			"name it by its absolute path (/usr/bin/tokenauthd)")
		return false
	}
	if why := d.access(svc, cmd.prog, access.Exec); why != "" {
		d.addAt(at, Error, fmt.Sprintf("%s cannot run %s as its user %s: %s", svc.name, cmd.prog, svc.user.Name, why),
			"install tokenauthd as /usr/bin/tokenauthd (root:root, 0755), outside /tmp and /home")
	}
	return false
}

// checkRelay checks a `tokenauthd connect` helper: the socket it dials,
// that it is the daemon's and visible in the server's sandbox, and that
// the server's user is in its group.
func (d *doctor) checkRelay(svc *service, cmd helperCmd, at finding, hosts []string) {
	socket, from := cmd.socket, "its -socket"
	if socket == "" {
		cfg := cmd.config
		if cfg == "" {
			cfg = config.DefaultPath
		}
		socket, from = config.DefaultSocket, "the default, as "+svc.user.Name+" cannot read "+cfg
		if d.access(svc, cfg, access.Read) == "" {
			// The relay reads a file it can, held to the daemon's rules.
			if fi, err := d.sys.Stat(cfg); err == nil {
				if why := trustedBy(fi, svc.user); why != "" {
					d.addAt(at, Error, fmt.Sprintf("the relay, run as %s, reads %s, which is %s: it exits, and every login is refused", svc.user.Name, cfg, why),
						sh("chmod", "go-w", cfg)+" and give it to root (or to the daemon's user, chmod 0600: the relay needs only -socket)")
					return
				}
			}
			if data, err := d.sys.ReadFile(cfg, maxConfig); err == nil {
				if rc, err := parseTokenauthd(cfg, data); err == nil {
					socket, from = rc.socket, "[daemon] socket in "+cfg
				}
			}
		} else if cmd.configExplicit {
			d.addAt(at, Error, fmt.Sprintf("the relay cannot read its -config %s as %s (%s): it exits, and every login is refused",
				cfg, svc.user.Name, d.access(svc, cfg, access.Read)), "drop -config from the relay (it needs only the socket: -socket PATH)")
			return
		}
	}
	if why := svc.unit.hides(socket); why != "" {
		d.addAt(at, Error, fmt.Sprintf("the relay dials %s (%s), but %s", socket, from, why),
			"put the socket outside /tmp: the default /run/tokenauthd/tokenauthd.sock ([daemon] socket, and -socket)")
	}
	if d.tad != nil && filepath.Clean(socket) != filepath.Clean(d.tad.socket) {
		d.addAt(at, Error, fmt.Sprintf("the relay dials %s (%s), but the daemon listens on %s ([daemon] socket in %s)", socket, from, d.tad.socket, d.tad.path),
			"give the relay -socket "+sh(d.tad.socket))
	}
	c := socketClient{svc: svc, socket: socket, host: hosts[0], file: at.file, line: at.line, key: at.key}
	d.clients = append(d.clients, c)
	d.checkGroup(c)
}

// checkStandalone checks a stdin/stdout helper: its configuration, readable
// by the server's user, and the pool: helpers that each remember only
// their own tokens let a replay through when it lands on another.
func (d *doctor) checkStandalone(svc *service, cmd helperCmd, at finding, hosts []string, pool map[int][]string, poolAt map[int]place) {
	store := "memory"
	var hc *tokenauthdFile
	if cmd.tokenauthd {
		cfg := cmd.config
		if cfg == "" {
			cfg = config.DefaultPath
		}
		hc = d.checkHelperConfig(svc, cfg, at)
		if hc != nil {
			store = hc.store
			for _, h := range hosts {
				if !slices.Contains(hc.hosts, h) {
					d.addAt(at, Error, fmt.Sprintf("host %s authenticates with %s, whose configuration %s has no [hosts.%q] section: every login there is refused",
						h, cmd.prog, cfg, h), sh("tokenauthd", "gen-secrets", h)+" >> "+sh(cfg)+" (and give the application its secrets)")
				}
			}
		}
	}
	if store == "redis" {
		return
	}
	for _, size := range slices.Sorted(maps.Keys(pool)) {
		if size <= 1 {
			continue
		}
		p := poolAt[size]
		how := fmt.Sprintf("extauth_pool_size is %d", size)
		if p.line == 0 {
			how = fmt.Sprintf("extauth_pool_size is not set, and ejabberd starts one helper per processor (%d here)", size)
		}
		whose := "it remembers the tokens it accepted in its own memory"
		if !cmd.tokenauthd {
			whose = "it is not tokenauthd, and doctor cannot tell whether its helpers share what they accepted"
		}
		key := "extauth_pool_size"
		if p.scope != "" {
			key = p.scope + ": " + key
		}
		d.add(Finding{Severity: Error, File: p.file, Line: p.line, Key: key,
			Message: fmt.Sprintf("%s for %s, of the stdin/stdout helper %s: %s, so a token replayed to another helper of the pool is accepted again",
				how, hostList(pool[size]), cmd.prog, whose),
			Fix: `use the daemon and its relay (extauth_program: "/usr/bin/tokenauthd connect -protocol ejabberd"), or set extauth_pool_size: 1`})
	}
}

// checkHelperConfig checks that a stdin/stdout helper, run as the server's
// user, can read its configuration and secret files and would trust them,
// and returns what doctor read of it (nil if it could not).
func (d *doctor) checkHelperConfig(svc *service, path string, at finding) *tokenauthdFile {
	if why := d.access(svc, path, access.Read); why != "" {
		// Nor does doctor read it: it quotes nothing of a file the
		// server's user may not read.
		d.addAt(at, Error, fmt.Sprintf("the helper, run as %s, cannot read its configuration %s: %s; it exits, and every login is refused", svc.user.Name, path, why),
			chownFix(svc.user.Name, path))
		return nil
	} else if fi, err := d.sys.Stat(path); err == nil {
		if why := trustedBy(fi, svc.user); why != "" {
			d.addAt(at, Error, fmt.Sprintf("the helper's configuration %s is %s", path, why),
				chownFix(svc.user.Name, path))
		}
	}
	data, err := d.sys.ReadFile(path, maxConfig)
	if err != nil {
		return nil
	}
	hc, err := parseTokenauthd(path, data)
	if err != nil {
		d.addAt(at, Error, "the helper's configuration is refused: "+trimPath(err.Error(), path), sh("tokenauthd", "check-config", "-config", path))
		return nil
	}
	for _, f := range hc.secretFiles {
		if why := d.access(svc, f, access.Read); why != "" {
			d.addAt(at, Error, fmt.Sprintf("the helper, run as %s, cannot read the secret file %s: %s", svc.user.Name, f, why),
				chownFix(svc.user.Name, f))
		}
	}
	if hc.credentials {
		d.addAt(at, Error, path+" names secrets as systemd credentials (%d/...), which exist only inside tokenauthd.service, not for a helper "+svc.name+" runs",
			"give the helper its secrets in files it can read, or use the daemon and its relay")
	}
	return hc
}
