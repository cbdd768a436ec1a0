package daemon

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/httpapi"
)

// newHTTP makes serve's HTTP API when [http] listen is set, minting with
// h's verifier in effect, and listens at once (a bad address fails at
// start); Run serves it. With no [http] listen it returns nils.
func newHTTP(cfg *config.Config, h *authHandler, m *metrics, log *slog.Logger) (*httpapi.Server, net.Listener, error) {
	if cfg.HTTP == nil {
		return nil, nil, nil
	}
	o := httpapi.Options{Minter: func() httpapi.Minter { return h.verifier() }, Log: log}
	if m != nil {
		o.Registerer = m.reg
	}
	api, err := httpapi.New(cfg.HTTP, o)
	if err != nil {
		return nil, nil, fmt.Errorf("http: %w", err)
	}
	l, err := listenHTTP(cfg.HTTP)
	if err != nil {
		return nil, nil, fmt.Errorf("http.listen: %w", err)
	}
	log.Info("http listening", "addr", l.Addr().String(), "tls", cfg.HTTP.TLSCert != nil)
	return api, l, nil
}

// reloadHTTP puts a reloaded configuration's [http] in effect, if serve
// has an HTTP API; the one in effect keeps serving if it fails.
func (d *Daemon) reloadHTTP(c *config.Config) {
	if d.api == nil {
		return
	}
	if err := d.api.Reload(c.HTTP); err != nil {
		d.log.Error("http: reload failed; the previous [http] keeps serving", "err", err)
	}
}

// listenHTTP listens on [http] listen: TCP, or a Unix socket made as the
// daemon's is (mode 0660, given to socket_group).
func listenHTTP(c *config.HTTP) (net.Listener, error) {
	if c.Socket == "" {
		return net.Listen("tcp", c.Listen)
	}
	l, err := listenUnix(c.Socket)
	if err != nil {
		return nil, err
	}
	if c.SocketGroup != "" {
		if err := chgrp(c.Socket, c.SocketGroup); err != nil {
			l.Close()
			return nil, fmt.Errorf("http.socket_group: %w", err)
		}
	}
	return l, nil
}

// httpListen is what of [http] a reload cannot change.
func httpListen(c *config.Config) string {
	if c.HTTP == nil {
		return ""
	}
	return c.HTTP.Listen + "|" + c.HTTP.Socket + "|" + c.HTTP.SocketGroup + "|" + fmt.Sprint(c.HTTP.TLSCert != nil)
}
