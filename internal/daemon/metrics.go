package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/seen"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// metrics are the daemon's Prometheus metrics, on a registry of their own
// (never the global default one). A nil *metrics records nothing.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	storeErrors prometheus.Counter
	reloads     *prometheus.CounterVec
	connections prometheus.Gauge
	connRefused prometheus.Counter
	reqTimeouts prometheus.Counter
}

// requestSeries lists every (command, result, reason) a request can be
// counted under, from verifier.Reasons() and auth.go's own reasons. Each
// series is exported from the start, at 0, as Prometheus' instrumentation
// guide asks: a series that appears only at its first event hides that
// event from rate() and from alerts on it.
func requestSeries() [][3]string {
	var s [][3]string
	add := func(command string, yes bool, reason string) {
		result := "no"
		if yes {
			result = "yes"
		}
		s = append(s, [3]string{command, result, reason})
	}
	for _, r := range verifier.Reasons() {
		// Yes: auth and unused for a token that passes every check (and,
		// for auth, is recorded); seen for one already recorded.
		add(protocol.CmdAuth, r == verifier.Accepted, string(r))
		add(protocol.CmdUnused, r == verifier.Accepted, string(r))
		add(protocol.CmdSeen, r == verifier.Replayed, string(r))
	}
	add(protocol.CmdIsUser, true, "exists")
	add(protocol.CmdIsUser, false, reasonNoUser)
	add(protocol.CmdIsUser, true, reasonSeenUser)
	add(protocol.CmdIsUser, false, reasonNotSeen)
	add(protocol.CmdIsUser, false, reasonSeenUnavail)
	for _, c := range protocol.Commands() {
		switch c {
		case protocol.CmdAuth, protocol.CmdUnused, protocol.CmdSeen, protocol.CmdIsUser:
		default:
			add(c, false, reasonUnsupported)
		}
	}
	add("invalid", false, reasonBadRequest)
	return s
}

// liveEvictor is a store that counts records forced out while still live.
type liveEvictor interface{ LiveEvictions() uint64 }

// replicaWatcher is a store that counts the shards short of replicas.
type replicaWatcher interface{ ReplicasShort() int }

// newMetrics registers the metrics of a daemon whose replay store is store.
func newMetrics(store replay.Store) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenauthd_requests_total",
		Help: "Requests answered, by command, result (yes or no) and reason.",
	}, []string{"command", "result", "reason"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tokenauthd_request_duration_seconds",
		Help:    "Time to answer a request, replay store included, by command.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"command"})
	m.storeErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "tokenauthd_replay_store_errors_total", Help: "Tokens refused because the replay store could not answer."})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenauthd_config_reloads_total",
		Help: "Configuration reloads, by result (ok or failed).",
	}, []string{"result"})
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("failed")
	for _, l := range requestSeries() {
		m.requests.WithLabelValues(l[0], l[1], l[2])
	}
	for _, c := range protocol.Commands() {
		m.latency.WithLabelValues(c)
	}
	m.connections = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tokenauthd_connections", Help: "Connections open to the daemon's sockets."})
	m.connRefused = prometheus.NewCounter(prometheus.CounterOpts{Name: "tokenauthd_connections_refused_total", Help: "Connections closed at once because [daemon] max_connections were open."})
	m.reqTimeouts = prometheus.NewCounter(prometheus.CounterOpts{Name: "tokenauthd_request_timeouts_total", Help: "Connections closed because a request took longer than [daemon] request_timeout_ms to arrive."})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "tokenauthd_build_info",
		Help:        "Always 1; its labels are the version and the Go version.",
		ConstLabels: prometheus.Labels{"version": cli.Version(), "goversion": runtime.Version()},
	})
	build.Set(1)
	size := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tokenauthd_replay_store_records",
		Help: "Records in the replay store (-1: the store cannot tell cheaply).",
	}, func() float64 { return float64(store.Len()) })
	m.reg.MustRegister(m.requests, m.latency, m.storeErrors, m.reloads, build, size,
		m.connections, m.connRefused, m.reqTimeouts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if le, ok := store.(liveEvictor); ok {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tokenauthd_replay_live_evictions_total",
			Help: "Records forced out of the replay store by its capacity while still inside their window: raise [replay] capacity.",
		}, func() float64 { return float64(le.LiveEvictions()) }))
	}
	if rw, ok := store.(replicaWatcher); ok {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tokenauthd_redis_replicas_short",
			Help: "Redis shards (a Cluster's masters, or the one master) with fewer replicas online than [replay] redis_min_replicas at the last check: tokens recorded there are refused.",
		}, func() float64 { return float64(rw.ReplicasShort()) }))
	}
	return m
}

// watchSeen registers the counts of the users seen logging in (isuser =
// "seen"), read from b when scraped.
func (m *metrics) watchSeen(b *seen.Book) {
	if m == nil || b == nil {
		return
	}
	stat := func(f func(seen.Stats) float64) func() float64 { return func() float64 { return f(b.Stats()) } }
	errs := func(read bool) prometheus.Collector {
		op := "write"
		if read {
			op = "read"
		}
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "tokenauthd_seen_errors_total",
			Help:        "Seen users' marks that could not be written after a login (write), or asked by isuser, answered no (read).",
			ConstLabels: prometheus.Labels{"op": op},
		}, stat(func(s seen.Stats) float64 {
			if read {
				return float64(s.ReadErrors)
			}
			return float64(s.WriteErrors)
		}))
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tokenauthd_seen_users",
			Help: `Users marked as seen logging in, for hosts with isuser = "seen" (-1: the store cannot tell cheaply: Redis).`,
		}, stat(func(s seen.Stats) float64 { return float64(s.Marks) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tokenauthd_seen_writes_total",
			Help: "Seen users' marks written (at most one per user and day per process).",
		}, stat(func(s seen.Stats) float64 { return float64(s.Writes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tokenauthd_seen_evictions_total",
			Help: "Seen users forced out by [replay] capacity before seen_for had passed (memory and journal): unknown until their next login; raise [replay] capacity.",
		}, stat(func(s seen.Stats) float64 { return float64(s.Evictions) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tokenauthd_seen_losses_total",
			Help: "Times the seen users may have been lost (a damaged or absent file, a Redis that lost its data): they are unknown until their next login.",
		}, stat(func(s seen.Stats) float64 { return float64(s.Losses) })),
		errs(false), errs(true))
}

// request counts an answered request and records how long it took.
func (m *metrics) request(command string, ok bool, reason string, took time.Duration) {
	if m == nil {
		return
	}
	m.count(command, ok, reason)
	m.latency.WithLabelValues(command).Observe(took.Seconds())
}

// count counts an answered request (one refused before it was timed).
func (m *metrics) count(command string, ok bool, reason string) {
	if m == nil {
		return
	}
	result := "no"
	if ok {
		result = "yes"
	}
	m.requests.WithLabelValues(command, result, reason).Inc()
}

// An event is what the daemon counts besides requests.
type event int

const (
	storeError        event = iota // a token refused: the replay store could not answer
	connectionOpened               // a connection opened (the gauge of open ones goes up)
	connectionClosed               // a connection closed (it goes down)
	connectionRefused              // a connection refused for max_connections
	requestTimeout                 // a connection closed for request_timeout_ms
)

// event counts e.
func (m *metrics) event(e event) {
	if m == nil {
		return
	}
	switch e {
	case storeError:
		m.storeErrors.Inc()
	case connectionOpened:
		m.connections.Inc()
	case connectionClosed:
		m.connections.Dec()
	case connectionRefused:
		m.connRefused.Inc()
	case requestTimeout:
		m.reqTimeouts.Inc()
	}
}

func (m *metrics) reload(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("failed").Inc()
	}
}

// serveMetrics serves /metrics on l, which New opened (so that a bad
// address fails at start), until ctx ends.
func serveMetrics(ctx context.Context, l net.Listener, m *metrics, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "err", err)
		}
	}()
}
