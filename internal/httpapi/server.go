package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// Bounds of the listener. A client holds a connection for at most
// ReadHeaderTimeout before its request's headers are in, and a request's
// body is at most MaxBody bytes (a JID is at most 3,071).
const (
	MaxConnections    = 512
	MaxBody           = 4 << 10
	MaxHeaderBytes    = 8 << 10
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 10 * time.Second
	IdleTimeout       = 60 * time.Second
	stopTimeout       = 5 * time.Second
)

// A Minter mints tokens: the verifier in effect.
type Minter interface {
	Mint(user, host string, at time.Time, nonce string) (string, error)
	Params() verifier.Params
}

var _ Minter = (*verifier.Verifier)(nil)

// Options are what a Server takes besides its configuration.
type Options struct {
	// Minter returns the minter in effect (the daemon's verifier, which a
	// reload swaps).
	Minter func() Minter
	// Log receives one line per mint and rate-limited refusals.
	Log *slog.Logger
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Registerer, if not nil, gets the API's metrics.
	Registerer prometheus.Registerer
}

// Server is the HTTP API. Its configuration can be swapped while it
// serves (Reload); each request uses one configuration throughout.
type Server struct {
	o        Options
	maxConns int // connections admitted at once (MaxConnections)
	state    atomic.Pointer[state]
	limit    *limiter
	metrics  *metrics
	refusal  *logs.RateLog
}

// state is one configuration of the API, as it serves.
type state struct {
	apps      []app
	creds     *config.HTTPCredentials
	perMinute int
	cert      *tls.Certificate
}

// app is an application that may ask POST /v1/tokens.
type app struct {
	name  string
	key   [sha256.Size]byte // SHA-256 of its key: compared whatever the lengths
	hosts []string
}

// New returns the API for cfg (not nil).
func New(cfg *config.HTTP, o Options) (*Server, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, maxConns: MaxConnections, limit: newLimiter(), refusal: logs.NewRateLog(o.Log, o.Now)}
	if o.Registerer != nil {
		var err error
		if s.metrics, err = newMetrics(o.Registerer); err != nil {
			return nil, err
		}
	}
	st, err := newState(cfg)
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	return s, nil
}

// newState builds the serving state of cfg (nil: nothing is served).
func newState(cfg *config.HTTP) (*state, error) {
	st := &state{perMinute: 1}
	if cfg == nil {
		return st, nil
	}
	st.perMinute, st.creds = cfg.PerUserPerMinute, cfg.Credentials
	for name, a := range cfg.Apps {
		st.apps = append(st.apps, app{name: name, key: sha256.Sum256(a.Key), hosts: slices.Clone(a.Hosts)})
	}
	if cfg.TLSCert != nil {
		c, err := tls.X509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, err
		}
		st.cert = &c
	}
	return st, nil
}

// Reload puts cfg in effect for the next request: applications and their
// keys, the credentials endpoint, the limit, the TLS certificate. (Its
// listen address takes effect at the next start.) A nil cfg refuses every
// request.
func (s *Server) Reload(cfg *config.HTTP) error {
	st, err := newState(cfg)
	if err != nil {
		return err
	}
	old := s.state.Load()
	if st.cert == nil && old.cert != nil {
		st.cert = old.cert // a listener that serves TLS keeps serving it
	}
	s.state.Store(st)
	return nil
}

// Start serves l until ctx ends or stop is called; stop then waits, at
// most stopTimeout, for the requests being answered. A TCP listener serves
// TLS when the configuration has a certificate.
func (s *Server) Start(ctx context.Context, l net.Listener) (stop func()) {
	limit := newConnLimit(l, s.maxConns)
	l = limit
	if s.state.Load().cert != nil {
		l = tls.NewListener(l, &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.state.Load().cert, nil
			},
		})
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnState:         limit.track,
		// TLS handshake failures and the like: a client's doing, not news.
		ErrorLog: slog.NewLogLogger(s.o.Log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context {
			return context.WithoutCancel(ctx)
		},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.o.Log.Error("http: listener failed", "err", err)
		}
	}()
	stopped, shut := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(shut)
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			close(stopped)
		}
		<-shut
		<-done
	}
}
