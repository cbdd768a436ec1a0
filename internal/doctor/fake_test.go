package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tokenauthd/tokenauthd/protocol"
)

// fakeSys is a machine made up for a test: its files (metadata, and
// contents in memory or in a file of testdata), users, groups, units,
// processors, clock and daemons. A directory on the way to a file it
// holds is there too, root's, mode 0755. Programs run for real (Prosody's
// configuration loader).
type fakeSys struct {
	files    map[string]fakeFile
	users    map[string]User
	groups   map[string]Group
	units    map[string][]UnitFile
	cpus     int
	clock    ClockStatus
	clockErr error
	// daemons answer on their sockets: nil closes the connection at once.
	daemons map[string]protocol.Handler
}

type fakeFile struct {
	mode     fs.FileMode
	uid, gid int
	data     string // the contents, or
	disk     string // the file that holds them
}

// Accounts of the fake machine.
const (
	uidEjabberd, gidEjabberd     = 105, 108
	uidProsody, gidProsody       = 103, 106
	uidTokenauthd, gidTokenauthd = 998, 998
	gidClients                   = 999
)

// readRepo reads a file of the repository.
func readRepo(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// debianUnit is Debian 12's ejabberd.service, the part doctor reads.
const debianEjabberdUnit = `[Unit]
Description=robust, scalable and extensible realtime platform (XMPP server + MQTT broker + SIP service)
After=epmd.service network.target

[Service]
Type=notify
User=ejabberd
Group=ejabberd
ExecStart=/bin/sh -c '/usr/sbin/ejabberdctl foreground'
PrivateDevices=true
PrivateTmp=true
ProtectHome=true
ProtectSystem=full

[Install]
WantedBy=multi-user.target
`

// debianProsodyUnit is Debian 12's prosody.service, the part doctor reads.
const debianProsodyUnit = `[Unit]
Description=Prosody XMPP Server

[Service]
Type=simple
ExecStart=/usr/bin/prosody -F
User=prosody
Group=prosody
# PrivateTmp=true

[Install]
WantedBy=multi-user.target
`

// cleanMachine is a machine set up as the package sets it up: tokenauthd
// installed, its daemon answering on the default socket, ejabberd and
// Prosody in tokenauthd-clients, the clock synchronised.
func cleanMachine(t *testing.T) *fakeSys {
	t.Helper()
	s := &fakeSys{
		files: map[string]fakeFile{
			"/usr/bin/tokenauthd": {mode: 0o755, data: "\x7fELF"},
			"/etc/tokenauthd":     {mode: fs.ModeDir | 0o755},
			// The daemon's (README: root:tokenauthd, 0640).
			"/etc/tokenauthd/config.toml":                           {mode: 0o600, uid: uidTokenauthd, disk: "testdata/tokenauthd/config.toml"},
			"/run/tokenauthd":                                       {mode: fs.ModeDir | 0o755, uid: uidTokenauthd, gid: gidTokenauthd},
			"/run/tokenauthd/tokenauthd.sock":                       {mode: fs.ModeSocket | 0o660, uid: uidTokenauthd, gid: gidClients},
			"/usr/share/tokenauthd/prosody/mod_auth_tokenauthd.lua": {mode: 0o644, data: "-- the module"},
		},
		users: map[string]User{
			"root":       {Name: "root", UID: 0, GID: 0, GIDs: []int{0}},
			"ejabberd":   {Name: "ejabberd", UID: uidEjabberd, GID: gidEjabberd, GIDs: []int{gidEjabberd, gidClients}},
			"prosody":    {Name: "prosody", UID: uidProsody, GID: gidProsody, GIDs: []int{gidProsody, gidClients}},
			"tokenauthd": {Name: "tokenauthd", UID: uidTokenauthd, GID: gidTokenauthd, GIDs: []int{gidTokenauthd}},
		},
		groups: map[string]Group{
			"root":               {Name: "root", GID: 0},
			"ejabberd":           {Name: "ejabberd", GID: gidEjabberd},
			"prosody":            {Name: "prosody", GID: gidProsody},
			"tokenauthd":         {Name: "tokenauthd", GID: gidTokenauthd},
			"tokenauthd-clients": {Name: "tokenauthd-clients", GID: gidClients},
		},
		units: map[string][]UnitFile{
			"ejabberd.service":   {{Path: "/lib/systemd/system/ejabberd.service", Text: debianEjabberdUnit}},
			"prosody.service":    {{Path: "/lib/systemd/system/prosody.service", Text: debianProsodyUnit}},
			"tokenauthd.service": {{Path: "/usr/lib/systemd/system/tokenauthd.service", Text: readRepo(t, "systemd/tokenauthd.service")}},
			"tokenauthd.socket":  {{Path: "/usr/lib/systemd/system/tokenauthd.socket", Text: readRepo(t, "systemd/tokenauthd.socket")}},
		},
		cpus:  2,
		clock: ClockStatus{Synchronised: true},
		daemons: map[string]protocol.Handler{
			"/run/tokenauthd/tokenauthd.sock": protocol.HandlerFunc(func(context.Context, protocol.Request) bool { return false }),
		},
	}
	return s
}

// withProsody adds the machine's real Prosody launcher, whose Lua and
// configuration loader doctor runs; the test is skipped (or fails, with
// TOKENAUTHD_E2E=1) without Debian's prosody.
func (s *fakeSys) withProsody(t *testing.T) {
	t.Helper()
	requireProsody(t)
	b, err := os.ReadFile("/usr/bin/prosodyctl")
	if err != nil {
		t.Fatal(err)
	}
	s.files["/usr/bin/prosodyctl"] = fakeFile{mode: 0o755, data: string(b)}
}

// requireProsody fails (TOKENAUTHD_E2E=1) or skips a test that needs
// Debian's prosody and its Lua.
func requireProsody(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/usr/bin/prosodyctl", "/usr/bin/lua5.4", "/usr/lib/prosody/core/configmanager.lua"} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("TOKENAUTHD_E2E") == "1" {
				t.Fatalf("required test peer %s is missing: %v (scripts/test installs it)", p, err)
			}
			t.Skipf("test peer %s missing; run scripts/test to install it", p)
		}
	}
}

// addFile puts a file of testdata on the fake machine at path, root's,
// mode 0644.
func (s *fakeSys) addFile(path, disk string) {
	s.files[path] = fakeFile{mode: 0o644, disk: disk}
}

func (s *fakeSys) ReadFile(path string, max int64) ([]byte, error) {
	f, ok := s.files[path]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	if f.mode.IsDir() || f.mode.Type() == fs.ModeSocket {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data := []byte(f.data)
	if f.disk != "" {
		var err error
		if data, err = os.ReadFile(f.disk); err != nil {
			return nil, err
		}
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return data, nil
}

func (s *fakeSys) Stat(path string) (FileInfo, error) {
	path = filepath.Clean(path)
	if f, ok := s.files[path]; ok {
		return FileInfo{Mode: f.mode, UID: f.uid, GID: f.gid}, nil
	}
	for p := range s.files {
		if path == "/" || strings.HasPrefix(p, path+"/") {
			return FileInfo{Mode: fs.ModeDir | 0o755}, nil
		}
	}
	return FileInfo{}, &fs.PathError{Op: "stat", Path: path, Err: fs.ErrNotExist}
}

func (s *fakeSys) LookupUser(name string) (User, error) {
	if u, ok := s.users[name]; ok {
		u.GIDs = slices.Clone(u.GIDs)
		return u, nil
	}
	return User{}, fmt.Errorf("user: unknown user %s", name)
}

func (s *fakeSys) LookupGroup(name string) (Group, error) {
	if g, ok := s.groups[name]; ok {
		return g, nil
	}
	return Group{}, fmt.Errorf("group: unknown group %s", name)
}

func (s *fakeSys) UserName(uid int) string {
	for _, n := range slices.Sorted(maps.Keys(s.users)) {
		if s.users[n].UID == uid {
			return n
		}
	}
	return strconv.Itoa(uid)
}

func (s *fakeSys) GroupName(gid int) string {
	for _, n := range slices.Sorted(maps.Keys(s.groups)) {
		if s.groups[n].GID == gid {
			return n
		}
	}
	return strconv.Itoa(gid)
}

func (s *fakeSys) UnitFiles(unit string) ([]UnitFile, error) { return s.units[unit], nil }

func (s *fakeSys) NumCPU() int { return s.cpus }

func (s *fakeSys) Clock() (ClockStatus, error) { return s.clock, s.clockErr }

func (s *fakeSys) DialUnix(ctx context.Context, path string) (net.Conn, error) {
	h, ok := s.daemons[path]
	if !ok {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: errors.New("connection refused")}
	}
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		if h != nil {
			srv := protocol.Server{Mode: protocol.Auto, Handler: h}
			srv.Serve(ctx, server, server)
		}
	}()
	return client, nil
}

func (s *fakeSys) Run(ctx context.Context, prog string, args []string, maxOut int) ([]byte, []byte, error) {
	return OS().Run(ctx, prog, args, maxOut)
}
