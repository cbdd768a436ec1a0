package doctor

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/access"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/protocol"
)

// tokenauthdFile is what doctor reads of a tokenauthd configuration file
// (config.ReadOutline): no secret, only where they are.
type tokenauthdFile struct {
	path        string
	socket      string // [daemon] socket, or the default
	socketGroup string // [daemon] socket_group, "" if unset
	store       string // [replay] store: "memory" or "redis"
	hosts       []string
	everyName   []string // hosts with isuser = true: every name exists
	// credentials: some secret is a systemd credential (%d/...), which
	// exists only inside the service.
	credentials bool
	// secretFiles are the *_file paths outside the credentials.
	secretFiles []string
}

// maxConfig bounds a tokenauthd configuration file, as tokenauthd does.
const maxConfig = 1 << 20

// parseTokenauthd reads the parts of a configuration doctor needs; its
// errors never quote the file.
func parseTokenauthd(path string, data []byte) (*tokenauthdFile, error) {
	o, err := config.ReadOutline(path, data)
	if err != nil {
		return nil, err
	}
	return &tokenauthdFile{path: path, socket: o.Socket, socketGroup: o.SocketGroup, store: o.Store,
		hosts: o.Hosts, everyName: o.EveryName, credentials: o.Credentials, secretFiles: o.Files}, nil
}

// loadTokenauthd reads and checks tokenauthd's configuration: whether
// tokenauthd accepts it (as check-config does) and whether the daemon's
// user, if its unit is installed, may read it.
func (d *doctor) loadTokenauthd(path string, explicit bool) *tokenauthdFile {
	if _, err := d.sys.Stat(path); err != nil {
		if !explicit && isNotExist(err) {
			d.add(Finding{Severity: Note, File: path, Message: "no tokenauthd configuration here: the daemon's socket is taken as " +
				config.DefaultSocket + " and its hosts are not compared with the XMPP server's"})
			return nil
		}
		d.add(Finding{Severity: Error, File: path, Message: "cannot read tokenauthd's configuration: " + errText(err),
			Fix: "name it with -config"})
		return nil
	}
	data, err := d.sys.ReadFile(path, maxConfig)
	if err != nil {
		d.add(Finding{Severity: Error, File: path, Message: "cannot read tokenauthd's configuration: " + errText(err),
			Fix: "run doctor as root, or name the file with -config"})
		return nil
	}
	c, err := parseTokenauthd(path, data)
	if err != nil {
		d.add(Finding{Severity: Error, File: path, Message: "tokenauthd refuses it: " + trimPath(err.Error(), path),
			Fix: sh("tokenauthd", "check-config", "-config", path) + " tells the same; correct the key it names"})
		return nil
	}
	if c.credentials && d.creds.Credentials == "" {
		d.add(Finding{Severity: Note, File: path, Message: "secrets are systemd credentials (%d/...), which exist only inside the service: " +
			"the file is not validated here; the daemon logs what it refuses (journalctl -u tokenauthd)",
			Fix: "give the credentials' directory: tokenauthd doctor -credentials /etc/tokenauthd/secrets"})
	} else if parsed, err := setup.Parse(path, data, d.creds); err != nil && d.ownedByOthers(c.secretFiles) {
		// tokenauthd refuses a secret file owned by another user than
		// root and itself: doctor, run as root, cannot tell whether the
		// daemon's user would accept them.
		d.add(Finding{Severity: Note, File: path, Message: "not validated: its secret files belong to another user than doctor's",
			Fix: "run tokenauthd check-config as the user that reads it (" + sh("sudo", "-u", "tokenauthd", "tokenauthd", "check-config", "-config", path) + ")"})
	} else if err != nil {
		d.add(Finding{Severity: Error, File: path, Message: "tokenauthd refuses it: " + trimPath(err.Error(), path),
			Fix: sh("tokenauthd", "check-config", "-config", path) + " tells the same; correct the key it names"})
	} else {
		for _, w := range parsed.Warnings() {
			d.add(Finding{Severity: Warning, File: path, Message: trimPath(w, path), Fix: "see tokenauthd check-config"})
		}
		d.checkRedis(path, parsed.Config)
	}
	d.checkDaemonReadsConfig(c)
	d.checkEveryName(c)
	return c
}

// checkEveryName warns of each host where every name exists (isuser =
// true): a message to any name, a typo's or a stranger's, is kept offline
// for it, and subscriptions to names no one has are accepted.
func (d *doctor) checkEveryName(c *tokenauthdFile) {
	for _, h := range c.everyName {
		d.add(Finding{Severity: Warning, File: c.path,
			Message: fmt.Sprintf("host %q: isuser = true (or unset): every name exists, so messages to any name, a typo's or one no one has, are stored offline and never bounce", h),
			Fix:     fmt.Sprintf(`set isuser = "seen" in [hosts.%q]: a user then exists who logged in with a token or JWT within seen_for (90 days), and messages to others bounce`, h)})
	}
}

// ownedByOthers says whether a file of files belongs to another user than
// root.
func (d *doctor) ownedByOthers(files []string) bool {
	for _, f := range files {
		if fi, err := d.sys.Stat(f); err == nil && fi.UID != 0 {
			return true
		}
	}
	return false
}

// checkDaemonReadsConfig checks that the daemon's user, if its unit is
// installed, may read the configuration and its secret files, and that
// tokenauthd would trust them.
func (d *doctor) checkDaemonReadsConfig(c *tokenauthdFile) {
	files, err := d.sys.UnitFiles("tokenauthd.service")
	if err != nil || len(files) == 0 {
		return
	}
	svc := d.lookupService("tokenauthd", "tokenauthd.service", "tokenauthd")
	if filepath.Clean(svc.unit.configPath(config.DefaultPath)) != filepath.Clean(c.path) {
		return // the unit's daemon reads another file
	}
	for _, p := range append([]string{c.path}, c.secretFiles...) {
		key := ""
		if p != c.path {
			key = "secret file " + p
		}
		if why := d.access(svc, p, access.Read); why != "" {
			d.add(Finding{Severity: Error, File: c.path, Key: key,
				Message: "the daemon, run by tokenauthd.service as " + svc.user.Name + ", cannot read it: " + why,
				Fix:     chownFix(svc.user.Name, p)})
			continue
		}
		fi, err := d.sys.Stat(p)
		if err != nil {
			continue
		}
		if why := trustedBy(fi, svc.user); why != "" {
			d.add(Finding{Severity: Error, File: c.path, Key: key, Message: p + " is " + why,
				Fix: chownFix(svc.user.Name, p)})
		} else if fi.Mode.Perm()&0o004 != 0 {
			d.add(Finding{Severity: Warning, File: c.path, Key: key,
				Message: fmt.Sprintf("%s is readable by every user (mode %04o): it holds or names the secrets", p, fi.Mode.Perm()),
				Fix:     sh("chmod", "o-r", p)})
		}
	}
}

// trimPath drops the "PATH: " a configuration error starts with: the
// finding names the file already.
func trimPath(msg, path string) string {
	if rest, ok := strings.CutPrefix(msg, path); ok {
		return strings.TrimLeft(rest, ": ")
	}
	return msg
}

// daemonSocket is the socket the daemon listens on, as its configuration
// says.
func (d *doctor) daemonSocket() string {
	if d.tad != nil {
		return d.tad.socket
	}
	return config.DefaultSocket
}

// socketGroup is the group that may use the socket at path: the group the
// socket has if it exists, else [daemon] socket_group, else the SocketGroup=
// of tokenauthd.socket, else tokenauthd-clients. where says which.
func (d *doctor) socketGroup(path string) (g Group, where string, err error) {
	if fi, err := d.sys.Stat(path); err == nil && isSocket(fi) {
		return Group{Name: d.sys.GroupName(fi.GID), GID: fi.GID}, "the group of " + path, nil
	}
	name, where := "tokenauthd-clients", "the group tokenauthd.socket gives the socket"
	if d.tad != nil && d.tad.socketGroup != "" && path == d.tad.socket {
		name, where = d.tad.socketGroup, "[daemon] socket_group in "+d.tad.path
	} else if files, err := d.sys.UnitFiles("tokenauthd.socket"); err == nil && len(files) > 0 {
		if sg := socketUnitGroup(files); sg != "" {
			name = sg
		}
	}
	g, err = d.sys.LookupGroup(name)
	if err != nil {
		return Group{Name: name, GID: -1}, where, err
	}
	return g, where, nil
}

// socketUnitGroup reads SocketGroup= from a socket unit's files.
func socketUnitGroup(files []UnitFile) string {
	group := ""
	for _, f := range files {
		section := ""
		for _, line := range strings.Split(f.Text, "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "[") {
				section = strings.Trim(line, "[]")
				continue
			}
			if k, v, ok := strings.Cut(line, "="); ok && section == "Socket" && strings.TrimSpace(k) == "SocketGroup" {
				group = strings.TrimSpace(v)
			}
		}
	}
	return group
}

// socketClient is an XMPP server that talks to the daemon's socket.
type socketClient struct {
	svc    *service
	socket string
	host   string // a host it serves, for the isuser probe
	file   string // where it was told the socket
	key    string
	line   int
}

// checkGroup reports an XMPP server whose user is not in the socket's
// group, or a group that does not exist.
func (d *doctor) checkGroup(c socketClient) {
	g, where, err := d.socketGroup(c.socket)
	if err != nil {
		d.add(Finding{Severity: Error, Key: "group " + g.Name,
			Message: fmt.Sprintf("%s (%s) does not exist, so %s cannot be let into the socket", g.Name, where, c.svc.name),
			Fix:     "install the package, or run systemd-sysusers with tokenauthd's sysusers file"})
		return
	}
	if c.svc.userErr != "" {
		d.add(Finding{Severity: Error, Key: "user", Message: fmt.Sprintf("%s: %s", c.svc.name, c.svc.userErr)})
		return
	}
	if !c.svc.inGroup(g.GID) {
		restart := strings.ToLower(c.svc.name)
		d.add(Finding{Severity: Error, File: c.file, Line: c.line, Key: c.key,
			Message: fmt.Sprintf("%s's user %s is not in %s (%s): it cannot connect to the daemon's socket, and every login is refused",
				c.svc.name, c.svc.user.Name, g.Name, where),
			Fix: sh("adduser", c.svc.user.Name, g.Name) + " && " + sh("systemctl", "restart", restart)})
	}
}

// checkDaemon checks every socket an XMPP server uses (or, with none, the
// daemon's own): that it exists, that the server's user may connect to it,
// and that the daemon answers there a request that records nothing.
func (d *doctor) checkDaemon() {
	clients := d.clients
	if len(clients) == 0 {
		if d.tad == nil {
			return
		}
		if _, err := d.sys.Stat(d.tad.socket); err != nil {
			d.add(Finding{Severity: Note, Key: "daemon", Message: "no daemon socket at " + d.tad.socket +
				" and no XMPP server configured to use one: the daemon is not checked"})
			return
		}
		clients = []socketClient{{socket: d.tad.socket, file: d.tad.path, key: "daemon.socket"}}
	}
	asked := map[string]bool{}
	for _, c := range clients {
		fi, err := d.sys.Stat(c.socket)
		switch {
		case err != nil:
			if !asked[c.socket] {
				d.add(Finding{Severity: Error, File: c.file, Line: c.line, Key: c.key,
					Message: "no daemon socket at " + c.socket + ": " + errText(err) + "; every login is refused",
					Fix:     "systemctl enable --now tokenauthd.socket (or start tokenauthd serve), and check that the path is the daemon's"})
			}
			asked[c.socket] = true
			continue
		case !isSocket(fi):
			if !asked[c.socket] {
				d.add(Finding{Severity: Error, File: c.file, Line: c.line, Key: c.key,
					Message: c.socket + " is not a socket (" + fi.Mode.String() + ")", Fix: "point it at the daemon's socket"})
			}
			asked[c.socket] = true
			continue
		}
		if c.svc != nil {
			// Group membership is reported on its own (checkGroup): here,
			// what else keeps the user out.
			withGroup := *c.svc
			withGroup.user.GIDs = append(slices.Clone(c.svc.user.GIDs), fi.GID)
			if why := d.access(&withGroup, c.socket, access.Write); why != "" && c.svc.userErr == "" {
				d.add(Finding{Severity: Error, File: c.file, Line: c.line, Key: c.key,
					Message: fmt.Sprintf("%s cannot connect to %s: %s", c.svc.name, c.socket, why),
					Fix:     "the socket must be mode 0660 in its group, in directories " + c.svc.user.Name + " may enter (tokenauthd.socket does this)"})
			}
		}
		if !asked[c.socket] {
			asked[c.socket] = true
			d.probe(c)
		}
	}
}

// probeTimeout bounds the daemon's answer, as the relay's and the module's
// default.
const probeTimeout = protocol.DefaultClientTimeout

// probe asks the daemon at c.socket whether a user exists: a request
// that records nothing and that every configuration answers.
func (d *doctor) probe(c socketClient) {
	ctx, cancel := context.WithTimeout(d.ctx, probeTimeout)
	defer cancel()
	host := c.host
	if host == "" && d.tad != nil && len(d.tad.hosts) > 0 {
		host = d.tad.hosts[0]
	}
	if host == "" || strings.ContainsRune(host, ':') {
		host = "localhost"
	}
	err := func() error {
		nc, err := d.sys.DialUnix(ctx, c.socket)
		if err != nil {
			return err
		}
		defer nc.Close()
		conn := protocol.NewConn(nc, protocol.Ejabberd)
		deadline, _ := ctx.Deadline()
		if err := conn.SetDeadline(deadline); err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
		_, err = conn.Ask(protocol.Request{Command: "isuser", User: "tokenauthd-doctor", Server: host})
		return err
	}()
	if err != nil {
		d.add(Finding{Severity: Error, File: c.file, Line: c.line, Key: c.key,
			Message: fmt.Sprintf("the daemon at %s does not answer: %v; every login is refused", c.socket, err),
			Fix:     "systemctl status tokenauthd.socket tokenauthd; journalctl -u tokenauthd"})
	}
}

// maxClockError is the clock error the kernel may admit before doctor
// warns: a tenth of the OTP's 30-second step.
const maxClockError = 3 * time.Second

// checkClock warns of a clock no NTP client keeps synchronised: the
// one-time password of a token is good for 30 seconds, on the clocks of
// both the application that mints it and this machine.
func (d *doctor) checkClock() {
	st, err := d.sys.Clock()
	switch {
	case err != nil:
		d.add(Finding{Severity: Note, Key: "clock", Message: "cannot tell whether the clock is synchronised: " + err.Error()})
	case !st.Synchronised:
		d.add(Finding{Severity: Warning, Key: "clock",
			Message: "the kernel says the clock is not synchronised by NTP (adjtimex: STA_UNSYNC): a token's one-time password is good for 30 s, " +
				"so a clock that drifts from the application's refuses fresh tokens (otp_out_of_window)",
			Fix: "run an NTP client (systemd-timesyncd or chrony) on this machine and on the application's; timedatectl shows NTPSynchronized"})
	case st.MaxError > maxClockError:
		d.add(Finding{Severity: Warning, Key: "clock",
			Message: fmt.Sprintf("the kernel bounds the clock's error at %v only: a token's one-time password is good for 30 s", st.MaxError.Round(time.Millisecond)),
			Fix:     "check the NTP client (chronyc tracking, timedatectl timesync-status)"})
	}
}
