package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Outline is where a configuration file says things are, read without a
// secret: the daemon's socket and its group, the replay store, the hosts,
// and the files that hold secrets and key sets. It is for those who check
// a setup around the file (doctor): whether the daemon's user may read
// those files, whether the XMPP server dials that socket.
type Outline struct {
	Socket      string // [daemon] socket, or DefaultSocket
	SocketGroup string // [daemon] socket_group, "" if unset
	Store       string // [replay] store, "memory" if unset
	Hosts       []string
	// EveryName are the hosts whose isuser is true (set so, or unset):
	// every name exists on them.
	EveryName []string
	// Files are the *_file and keys_file paths, as written, outside
	// systemd's credentials ("%d/..."); Credentials says that some are
	// credentials, which exist only inside the service.
	Files       []string
	Credentials bool
}

// ReadOutline reads the outline of a configuration file's contents (path
// only names it in errors). It reads no file it names and checks no value
// beyond its type: Parse does. Its errors never quote the file.
func ReadOutline(path string, data []byte) (*Outline, error) {
	if err := CheckNesting(data); err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	var fc fileConfig
	if _, err := toml.Decode(string(data), &fc); err != nil {
		return nil, shortError{tomlError(path, err)}
	}
	o := &Outline{Socket: fc.Daemon.Socket, SocketGroup: fc.Daemon.SocketGroup, Store: fc.Replay.Store,
		Hosts: slices.Sorted(maps.Keys(fc.Hosts))}
	for _, h := range o.Hosts {
		if v, ok := fc.Hosts[h].IsUser.(bool); fc.Hosts[h].IsUser == nil || ok && v {
			o.EveryName = append(o.EveryName, h)
		}
	}
	if o.Socket == "" {
		o.Socket = DefaultSocket
	}
	if o.Store == "" {
		o.Store = "memory"
	}
	for _, f := range secretFiles(&fc, true) {
		if strings.HasPrefix(f, "%d/") {
			o.Credentials = true
		} else {
			o.Files = append(o.Files, f)
		}
	}
	return o, nil
}
